#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Regenerates the seed corpus in tests/fuzz/corpus/ (the committed one was
made with this script; inputs the fuzzers found are kept beside the seeds).

    tests/fuzz/mkcorpus.py BUILD_DIR      (needs BUILD_DIR/tandem-image, tdelta)
    tests/fuzz/mkcorpus.py BUILD_DIR channel     (the channel index seeds only)
    tests/fuzz/mkcorpus.py BUILD_DIR delta       (the delta op stream seeds only)

Real bundles and deltas are made with the project's own tools, so the
seeds start the fuzzers where real data lives; a signing key is made in a
temporary directory and thrown away (the fuzz targets make their own).
Each seed is prefixed with the target's mode/flag byte (see the comment at
the top of each fuzz_*.c)."""
import json, os, random, shutil, struct, subprocess, sys, tempfile, zlib

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
out = os.path.join(top, "tests", "fuzz", "corpus")
rng = random.Random(20261122)  # deterministic seeds


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def split_bundle(b):
    mlen, slen = struct.unpack(">II", b[16:24])
    return b[32:32 + mlen], b[32 + mlen:32 + mlen + slen], b[32 + mlen + slen:]


def bundles(tmp):
    ti = os.path.join(build, "tandem-image")
    key, pub = os.path.join(tmp, "k.key"), os.path.join(tmp, "k.pem")
    subprocess.run([ti, "keygen", "--out", key, "--pub", pub], check=True,
                   stdout=subprocess.DEVNULL)
    mixed = bytes(rng.getrandbits(8) for _ in range(4096)) + b"\0" * 8192 + \
        b"tandem " * 1200 + bytes(rng.getrandbits(8) for _ in range(1000))
    images = {
        "mixed": (mixed, []),
        "empty": (b"", []),
        "tiny": (b"x", ["--description", "one byte \u00e9\u2603", "--security-version", "7",
                        "--expires", "2030-01-01T00:00:00Z"]),
        "zeros": (b"\0" * 20000, []),
    }
    made = {}
    for name, (img, extra) in images.items():
        ip, bp = os.path.join(tmp, name + ".img"), os.path.join(tmp, name + ".tnd")
        with open(ip, "wb") as f:
            f.write(img)
        subprocess.run([ti, "build", "--key", key, "--image", ip, "--version", "1.0." + name,
                        "--compatible", "fuzz-board", "--out", bp, "--chunk-size", "4K",
                        "--created", "2026-01-01T00:00:00Z"] + extra, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        made[name] = open(bp, "rb").read()
    # A delta bundle, when this build's tandem-image makes them.
    base = os.path.join(tmp, "mixed.img")
    tgt = os.path.join(tmp, "mixed2.img")
    with open(tgt, "wb") as f:
        f.write(mixed[:5000] + b"changed!" + mixed[5008:] + b"appended" * 50)
    bp = os.path.join(tmp, "delta.tnd")
    if subprocess.run([ti, "build", "--key", key, "--image", tgt, "--base", base,
                       "--version", "1.1", "--compatible", "fuzz-board", "--out", bp,
                       "--chunk-size", "4K", "--created", "2026-01-01T00:00:00Z"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        made["delta"] = open(bp, "rb").read()
    return made


def base_byte(i):  # as in fuzz_delta.c
    if (i // 4096) % 5 == 3:
        return 0
    return ((i * 131 + (i >> 8) * 7) ^ (i >> 3)) & 0xff


def varint(v):
    o = bytearray()
    while v >= 0x80:
        o.append((v & 0x7f) | 0x80)
        v >>= 7
    o.append(v)
    return bytes(o)


def zz(v):
    return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1


def raw_delta(bsz, tsz, ctrl_ops, extra, diff, codec=0):
    """A delta with uncompressed sub-streams, frames in the order the
    decoder wants them: control, then extra, then diff."""
    hdr = b"TNDD" + bytes([1, 16, codec, codec, codec, 0, 0, 0]) + struct.pack(">QQ", bsz, tsz)
    body = b""
    for tag, data in ((1, ctrl_ops), (3, extra), (2, diff)):
        if not data:
            continue
        if codec:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            comp = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        else:
            comp = data
        body += bytes([tag]) + varint(len(data)) + varint(len(comp)) + comp
    return hdr + body + b"\0"


def xz_squashfs(tmp):
    """A 12 KiB xz squashfs of text (4 KiB blocks), or None without
    mksquashfs. Only mksquashfs's one-shot encoder writes the streams the
    delta encoder can rebuild (sizes in the block header)."""
    if not shutil.which("mksquashfs"):
        return None
    r = random.Random(3)  # its own, so the other seeds stay as they were
    tree = os.path.join(tmp, "sqtree")
    os.makedirs(tree, exist_ok=True)
    words = [bytes(r.choice(b"abcdefgh") for _ in range(r.randint(2, 7))) for _ in range(200)]
    open(os.path.join(tree, "f"), "wb").write(b" ".join(r.choice(words) for _ in range(6000))[:24000])
    img = os.path.join(tmp, "sq.img")
    if subprocess.run(["mksquashfs", tree, img, "-comp", "xz", "-noappend", "-quiet", "-all-root",
                       "-mkfs-time", "0", "-all-time", "0", "-b", "4096"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        return None
    return open(img, "rb").read()


def deltas(tmp):
    n = 80 * 1024
    base = bytes(base_byte(i) for i in range(n))
    bp = os.path.join(tmp, "base")
    with open(bp, "wb") as f:
        f.write(base)
    targets = {
        "same": base,
        "edit": base[:1000] + b"EDITED" + base[1006:40000] + bytes((b + 1) & 0xff for b in base[40000:40300]) + base[40300:],
        # its own generator: the same bytes with or without the other seeds
        "insert": base[:30000] + random.Random(5).randbytes(3000) + base[30000:],
        "shrink": base[5000:20000] + b"\xaa" * 9000,
        "grow": base + base[:70000],
        "empty": b"",
    }
    # Format version 2: xz streams (a tiny xz squashfs spliced into the
    # base) that the decoder rebuilds with liblzma (XZ ops).
    sq = xz_squashfs(tmp)
    if sq:
        targets["xz-insert"] = base[:20000] + sq + base[20000:60000]
        targets["xz-replace"] = base[:8192] + sq + base[8192 + len(sq):]
    tdelta = os.path.join(build, "tdelta")
    for (name, t), fmt in ((nt, f) for nt in targets.items() for f in (2, 4, 6)):
        tp, dp = os.path.join(tmp, "t-" + name), os.path.join(tmp, "d-" + name)
        with open(tp, "wb") as f:
            f.write(t)
        # Every pair of format versions (an even one rebuilds xz streams
        # where there are any): 1/2 unchecked, named without a suffix as
        # when the encoder wrote them by default, 3/4 with CRC-32 checks
        # and 5/6 with SHA-256 checks suffixed with the version.
        if subprocess.run([tdelta, "diff", "-F", str(fmt), bp, tp, dp], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode:
            continue
        d = open(dp, "rb").read()
        if d[4] > 2:
            name += "-v%d" % d[4]
        put("delta", name, b"\x00" + d)
        if name.split("-v")[0] in ("edit", "insert"):
            put("delta", name + "-bytewise", b"\x01" + d)
            put("delta", name + "-7", b"\x02" + d)
            put("delta", name + "-emitfail", b"\x07" + d)
            put("delta", name + "-shortbase", b"\x08" + d[:12] + struct.pack(">Q", n + 4096) + d[20:])
        if d[4] > 4:
            # flag 16: the decoder's helper thread; flags >> 5: a resume
            put("delta", name + "-helper", b"\x10" + d)
            put("delta", name + "-helper-7-emitfail", b"\x16" + d)
            put("delta", name + "-skip1", b"\x20" + d)
            put("delta", name + "-helper-skip3", b"\x70" + d)
    # Every op with uncompressed (codec 0) and deflated sub-streams.
    ops = (bytes([1]) + varint(100) + varint(zz(0)) +        # COPY base[0..100)
           bytes([4]) + varint(50) + b"\xaa" +                # FILL
           bytes([3]) + varint(10) +                          # EXTRA
           bytes([2]) + varint(20) + varint(zz(-30)) +        # ADD base[70..90)
           bytes([1]) + varint(16) + varint(zz(n - 90 - 16))) # COPY the last 16 bytes
    extra, diff = b"0123456789", bytes(range(20))
    tsz = 100 + 50 + 10 + 20 + 16
    put("delta", "ops-raw", b"\x00" + raw_delta(n, tsz, ops, extra, diff))
    put("delta", "ops-raw-bytewise", b"\x01" + raw_delta(n, tsz, ops, extra, diff))
    put("delta", "ops-deflate", b"\x03" + raw_delta(n, tsz, ops, extra, diff, codec=1))
    put("delta", "empty-target", b"\x00" + raw_delta(n, 0, b"", b"", b""))
    put("delta", "header-only", b"\x00" + raw_delta(n, 5, b"", b"", b"")[:-1])


def channels(tmp):
    """Channel indexes: one published by tandem-image (three releases, two
    deltas) and hand-written documents at and past the format's limits."""
    ti = os.path.join(build, "tandem-image")
    key, pub, ch = (os.path.join(tmp, n) for n in ("ck.key", "ck.pem", "channel"))
    subprocess.run([ti, "keygen", "--out", key, "--pub", pub], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, TANDEM_NOW="2026-01-01T00:00:00Z")
    img = bytearray(bytes(rng.getrandbits(8) for _ in range(8192)) + b"\0" * 8192)
    for i, v in enumerate(("1.0", "1.1", "1.2")):
        img[100 * i:100 * i + 4] = b"EDIT"
        ip, bp = os.path.join(tmp, v + ".img"), os.path.join(tmp, v + ".tnd")
        open(ip, "wb").write(img)
        subprocess.run([ti, "-q", "build", "--key", key, "--image", ip, "--version", v,
                        "--compatible", "fuzz-board", "--out", bp, "--chunk-size", "4K",
                        "--created", "2026-01-01T00:00:00Z"], check=True)
        subprocess.run([ti, "-q", "publish", "--channel", ch, "--key", key, bp], check=True,
                       env=env, stdout=subprocess.DEVNULL)
    index = open(os.path.join(ch, "index.json"), "rb").read()
    doc = json.loads(index)["signed"].encode()
    put("channel", "raw-published", b"\x00" + index)
    put("channel", "wrapped-published", b"\x01" + doc)
    put("channel", "signed-published", b"\x02" + doc)
    h = "ab" * 32
    rel = {"compatible": "acme,board-a", "version": "2.0", "security_version": 1,
           "image_size": 4096, "image_sha256": h, "rollout_percent": 30,
           "full": {"url": "https://cdn.example.org/a/2.0.tnd?sig=x", "size": 5000, "sha256": h},
           "deltas": [{"base_sha256": "cd" * 32, "base_size": 4096, "base_version": "1.0",
                       "url": "acme,board-a/2.0-from-1.0.tnd", "size": 300, "sha256": h}]}
    d = {"sequence": 5, "created": "2027-01-01T00:00:00Z", "expires": "2027-01-08T00:00:00Z",
         "releases": [rel, dict(rel, compatible="acme,board-b", deltas=[])]}
    enc = lambda o: json.dumps(o, separators=(",", ":"))
    put("channel", "wrapped-two-boards", b"\x01" + enc(d).encode())
    put("channel", "wrapped-empty", b"\x01" + enc(dict(d, releases=[])).encode())
    edge = dict(d, sequence=9007199254740991,
                releases=[dict(rel, security_version=4294967295, image_size=9007199254740991,
                               rollout_percent=0, full=dict(rel["full"], url="u" * 1023))])
    put("channel", "wrapped-limits", b"\x01" + enc(edge).encode())
    put("channel", "wrapped-past-limits", b"\x01" + enc(dict(d, sequence=9007199254740992)).encode())
    put("channel", "wrapped-unknown-key", b"\x01" + enc(dict(d, mirror="x")).encode())
    put("channel", "wrapped-dotdot", b"\x01" + enc(dict(d, releases=[dict(
        rel, full=dict(rel["full"], url="a/../../b"))])).encode())
    put("channel", "wrapped-nul", b"\x01" + enc(d).encode().replace(b"2.0.tnd", b"2.0\\u0000.tnd"))
    put("channel", "raw-not-object", b"\x00[]")
    put("channel", "raw-deep", b"\x00" + b"[" * 1200 + b"]" * 1200)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        channels(tmp)
        made = bundles(tmp)
        for name, b in made.items():
            man, sig, recs = split_bundle(b)
            put("manifest", name, man)
            put("bundle", "raw-" + name, b"\x00" + b)
            put("bundle", "raw-file-" + name, bytes([2 << 2]) + b)
            chained = struct.pack(">H", len(man)) + man + recs
            for fl in (0, 2, 4, 4 | 8, 4 | 16, 4 | 24, 32, 1):
                if name != "mixed" and fl not in (0, 4):
                    continue
                put("bundle", "chain-%s-%02x" % (name, fl), bytes([1 | fl << 2]) + chained)
            if len(recs) >= 64:
                put("bundle", "direct-record-" + name, b"\x02" + recs[:64])
            put("bundle", "direct-header-" + name, bytes([2 | 1 << 2]) + b[:32])
            put("bundle", "direct-sigblock-" + name, bytes([2 | 2 << 2]) + sig)
        deltas(tmp)
    m = json.loads(made["tiny"][32:32 + struct.unpack(">I", made["tiny"][16:20])[0]])
    edge = dict(m)
    edge["security_version"] = 4294967295
    edge["payload"] = dict(m["payload"], chunk_size=16777216, size=9007199254740992)
    edge["image"] = dict(m["image"], size=9007199254740992)
    edge["future_key"] = {"nested": [1, 2.5, None, True, "x"]}
    put("manifest", "edge-limits", json.dumps(edge, separators=(",", ":")))
    put("manifest", "edge-escapes", json.dumps(dict(m, description="tab\t nl\n q\" \\u0000 \U0001f600"),
                                                ensure_ascii=True))
    put("manifest", "edge-trailing", json.dumps(m) + " x")
    put("manifest", "edge-deep", "[" * 1200 + "]" * 1200)
    put("manifest", "edge-numbers", json.dumps(dict(m, format=1.0, security_version=1e300)))

    sim = {"compatible": "sim", "keyring": "/k", "state_dir": "/s", "cmdline": "/c",
           "boot_id": "/b", "health_dir": "/h",
           "bootloader": {"type": "uboot", "env_config": "/e"},
           "slots": {"A": "/a", "B": "/b2"}, "boot_tries": 3}
    put("config", "sim", json.dumps(sim, indent="\t"))
    put("config", "docs", json.dumps(dict(sim, signature_threshold=1, health_timeout=60)))
    put("config", "minimal", '{"compatible":"x","slots":{"A":"/dev/a","B":"/dev/b"}}')
    put("config", "none", json.dumps(dict(sim, bootloader={"type": "none"})))
    put("config", "bad-key", json.dumps(dict(sim, slot={"A": "/a"})))
    put("config", "bad-numbers", json.dumps(dict(sim, boot_tries=9.5, health_timeout=4294967296)))
    put("config", "same-slots", json.dumps(dict(sim, slots={"A": "/a", "B": "/a"})))

    slot = {"state": "good", "version": "1.0", "compatible": "sim", "sha256": "ab" * 32,
            "size": 1048576, "security_version": 3, "updated": "2026-01-01T00:00:00Z"}
    st = {"format": 1, "slots": {"A": slot, "B": dict(slot, state="installed", version="1.1")},
          "pending_slot": "B", "pending_since": "2026-01-02T00:00:00Z",
          "pending_boot_id": "0e5f4c43-77a2-4b40-9b2a-0d6f9d3f9a57", "security_floor": 3,
          "last_boot": {"time": "2026-01-02T00:00:00Z", "result": "good", "slot": "A",
                        "version": "1.0"},
          "last_update": {"time": "2026-01-02T00:00:00Z", "result": "failed", "slot": "B",
                          "version": "1.1", "reason": "health check failed"},
          "last_install": {"time": "2026-01-02T00:00:00Z", "result": "failed",
                           "error_code": "E_SIGNATURE", "error": "bad signature"}}
    put("state", "full", json.dumps(st, indent="\t"))
    put("state", "fresh", '{"format":1,"slots":{"A":{"state":"unknown","security_version":0},'
        '"B":{"state":"unknown","security_version":0}},"security_floor":0}')
    put("state", "odd-types", json.dumps(dict(st, slots=[1, 2], pending_slot=1, security_floor="3",
                                              last_boot=[], last_install="x")))
    put("state", "leap-second", json.dumps(dict(st, pending_since="2016-12-31T23:59:60Z")))
    put("state", "not-object", "[]")


if sys.argv[2:] == ["channel"]:  # only the channel seeds (a new target's first corpus)
    with tempfile.TemporaryDirectory() as tmpdir:
        channels(tmpdir)
elif sys.argv[2:] == ["delta"]:  # only the delta seeds (a new format version)
    with tempfile.TemporaryDirectory() as tmpdir:
        deltas(tmpdir)
else:
    main()
