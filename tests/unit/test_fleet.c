// SPDX-License-Identifier: MIT
/*
 * The fleet module without a network (the polls themselves run against
 * real nginx in tests/integration/test_fleet.sh): the one poll-state
 * serializer and its file, the daemon's schedule, and which URLs a device
 * follows (server.url_policy).
 */
#include "testutil.h"

#include <cjson/cJSON.h>

#include "config.h"
#include "fleet.h"
#include "http.h"
#include "pollstate.h"
#include "util.h"

static void poll_state_round_trip(void **state)
{
	struct tnd_poll_state ps =
				  {
				      .etag = "\"abc\"",
				      .sequence = 9007199254740991ULL, /* 2^53 - 1: exact in JSON */
				      .last_poll = 1700000000,
				      .result = "installed",
				      .version = "1.2.0",
				      .next_poll = 1700003600,
				      .failures = 2,
				      .bytes = 123456789,
				      .requests = 3,
				      .bundle = "delta",
				      .reported_update = 1700000001,
				  },
			      back;
	char *dir = tu_mkdtemp(), *p = tu_path(dir, TND_POLL_FILE);
	cJSON *o = cJSON_CreateObject();

	(void)state;
	assert_int_equal(tnd_poll_state_save(&ps, dir), 0);
	assert_int_equal(tnd_poll_state_load(&back, dir), 0);
	assert_string_equal(back.etag, ps.etag);
	assert_true(back.sequence == ps.sequence);
	assert_int_equal(back.last_poll, ps.last_poll);
	assert_string_equal(back.result, ps.result);
	assert_string_equal(back.version, ps.version);
	assert_int_equal(back.next_poll, ps.next_poll);
	assert_int_equal(back.failures, ps.failures);
	assert_int_equal(back.bytes, ps.bytes);
	assert_int_equal(back.requests, ps.requests);
	assert_string_equal(back.bundle, ps.bundle);
	assert_int_equal(back.reported_update, ps.reported_update);
	/* one name per field, wherever the state is shown */
	assert_int_equal(tnd_poll_state_to_json(&ps, o), 0);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "sequence"));
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "index_sequence"));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "result")->valuestring,
			    "installed");
	cJSON_Delete(o);
	/* damaged: started afresh (a cache and a floor), never an error */
	tu_write_file(p, "{\"sequence\":", 12);
	assert_int_equal(tnd_poll_state_load(&back, dir), 0);
	assert_int_equal(back.sequence, 0);
	/* out-of-range numbers read as nothing, not as garbage */
	tu_write_file(p, "{\"sequence\":1e300,\"failures\":-4}", 32);
	assert_int_equal(tnd_poll_state_load(&back, dir), 0);
	assert_int_equal(back.sequence, 0);
	assert_int_equal(back.failures, 0);
	free(p);
	tu_rmdir(dir);
}

static void daemon_schedule(void **state)
{
	struct tnd_poll_state ps = {0};
	struct tnd_config cfg;

	(void)state;
	assert_int_equal(
	    tnd_config_parse(&cfg,
			     "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},"
			     "\"server\":{\"url\":\"https://u/i.json\",\"poll_interval\":3600,"
			     "\"poll_jitter\":60}}",
			     "t"),
	    0);
	for (int i = 0; i < 100; i++) {
		unsigned d = tnd_poll_delay(&cfg, &ps, 0);

		assert_true(d >= 3540 && d <= 3660);
	}
	/* a passing failure: 30 s, doubling, never above the interval */
	ps.failures = 1;
	assert_true(tnd_poll_delay(&cfg, &ps, TND_E_NETWORK) <= 30);
	ps.failures = 3;
	assert_true(tnd_poll_delay(&cfg, &ps, TND_E_NETWORK) <= 120);
	ps.failures = 30;
	assert_true(tnd_poll_delay(&cfg, &ps, TND_E_NETWORK) <= 3660);
	/* a permanent one (a bad signature) waits the whole interval */
	assert_true(tnd_poll_delay(&cfg, &ps, TND_E_SIGNATURE) >= 3540);
}

static void url_policy(void **state)
{
	static const struct {
		enum tnd_url_policy policy;
		const char *url;
		bool ok;
	} cases[] = {
	    {TND_URLS_HTTPS, "https://cdn.example/ch/b.tnd", true},
	    {TND_URLS_HTTPS, "http://cdn.example/ch/b.tnd", false},
	    {TND_URLS_SAME_ORIGIN, "https://up.example:8443/ch/b.tnd", true},
	    {TND_URLS_SAME_ORIGIN, "https://up.example:8443?x", true},
	    {TND_URLS_SAME_ORIGIN, "https://up.example/ch/b.tnd", false},	 /* port */
	    {TND_URLS_SAME_ORIGIN, "http://up.example:8443/ch/b.tnd", false},	 /* scheme */
	    {TND_URLS_SAME_ORIGIN, "https://up.example:8443.evil/b.tnd", false}, /* host */
	    {TND_URLS_ANY, "http://anywhere/b.tnd", true},
	    {TND_URLS_ANY, "ftp://anywhere/b.tnd", false},
	    {TND_URLS_ANY, "file:///etc/passwd", false},
	};
	struct tnd_config cfg;

	(void)state;
	for (size_t i = 0; i < TND_ARRAY_SIZE(cases); i++) {
		struct tnd_http_opts o = {.policy = cases[i].policy,
					  .origin = "https://up.example:8443/ch/index.json"};
		int r = tnd_http_url_allowed(&o, cases[i].url);

		if ((r == 0) != cases[i].ok)
			fail_msg("case %zu: %s was %s", i, cases[i].url, r ? "refused" : "allowed");
	}
	/* the configuration: https by default; plain HTTP only when allowed */
	assert_int_equal(
	    tnd_config_parse(&cfg,
			     "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},"
			     "\"server\":{\"url\":\"http://u/i.json\"}}",
			     "t"),
	    TND_E_CONFIG);
	assert_non_null(strstr(tnd_err_msg(), "url_policy"));
	assert_int_equal(
	    tnd_config_parse(&cfg,
			     "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},"
			     "\"server\":{\"url\":\"http://u/i.json\",\"url_policy\":\"any\"}}",
			     "t"),
	    0);
	assert_int_equal(cfg.server.url_policy, TND_URLS_ANY);
	assert_int_equal(
	    tnd_config_parse(&cfg,
			     "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},"
			     "\"server\":{\"url\":\"https://u/i.json\",\"url_policy\":\"some\"}}",
			     "t"),
	    TND_E_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(poll_state_round_trip),
	    cmocka_unit_test(daemon_schedule),
	    cmocka_unit_test(url_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
