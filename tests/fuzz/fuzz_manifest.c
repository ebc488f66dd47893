// SPDX-License-Identifier: MIT
/*
 * tnd_manifest_parse on arbitrary bytes. On the device the parser only
 * ever sees signed bytes, but a signing key is not a reason to trust the
 * parser with memory safety: a build server bug or a stolen key must not
 * turn into code execution on the fleet.
 *
 * Property: a manifest that parses serialises (tnd_manifest_to_json) and
 * parses back to the same struct, so what tandem-image writes and what a
 * device reads can never drift apart.
 */
#include "fuzz_common.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tnd_manifest m, m2;
	char *json = NULL;

	/* The reader never hands over more than the header allows. */
	if (size > 64 * 1024)
		return 0;
	if (tnd_manifest_parse(&m, (const char *)data, size))
		return 0;
	FUZZ_ASSERT(!m.verified);
	FUZZ_ASSERT(m.chunk_size >= TND_CHUNK_SIZE_MIN && m.chunk_size <= TND_CHUNK_SIZE_MAX);
	FUZZ_ASSERT((m.chunk_size & (m.chunk_size - 1)) == 0);
	FUZZ_ASSERT(m.has_base == (m.payload_type == TND_PAYLOAD_DELTA));
	FUZZ_ASSERT(!m.expires || m.expires > m.created);
	if (tnd_manifest_to_json(&m, &json))
		abort();
	FUZZ_ASSERT(tnd_manifest_parse(&m2, json, strlen(json)) == 0);
	/* Exact: integers are written as decimal text, sizes stay below 2^53
	 * (once a finding, now corpus/manifest/crash-size-near-2p53.json). */
	FUZZ_ASSERT(memcmp(&m, &m2, sizeof(m)) == 0);
	free(json);
	return 0;
}
