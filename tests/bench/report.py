#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""report.py RAW.tsv META.tsv OUTDIR: turns run.sh's measurements into
Markdown tables (stdout) and JSON copies (OUTDIR/*.json).

RAW lines: section, name, run, wall_s, user_s, sys_s, maxrss_kib, bytes
(or section, name, "skip", reason). META lines: key, value.
Medians over runs; peak RSS is reported as the median and the maximum
(a memory bound must hold in every run, so targets use the maximum)."""
import json
import statistics
import sys
from collections import OrderedDict

MiB = 1048576.0
TARGET_FRACTION = 0.85
TARGET_RSS_MIB = 8.0


def load(raw_path, meta_path):
    rows = OrderedDict()
    skips = OrderedDict()
    with open(raw_path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 4 and p[2] == "skip":
                skips[(p[0], p[1])] = p[3]
                continue
            if len(p) != 8:
                continue
            sec, name, run, wall, user, sys_, rss, nbytes = p
            rows.setdefault((sec, name), []).append(
                dict(run=run, wall=float(wall), user=float(user), sys=float(sys_),
                     rss_kib=int(rss), bytes=int(nbytes)))
    meta = OrderedDict()
    errors = []
    with open(meta_path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            if k == "error":
                errors.append(v)
            else:
                meta[k] = v
    return rows, skips, meta, errors


def summary(runs):
    walls = [r["wall"] for r in runs]
    cpu = [r["user"] + r["sys"] for r in runs]
    rss = [r["rss_kib"] / 1024.0 for r in runs]
    wall = statistics.median(walls)
    nbytes = runs[0]["bytes"]
    return OrderedDict(
        runs=len(runs), bytes=nbytes,
        wall_s=round(wall, 3), wall_min_s=round(min(walls), 3), wall_max_s=round(max(walls), 3),
        mib_s=round(nbytes / MiB / wall, 1) if wall > 0 else None,
        cpu_s=round(statistics.median(cpu), 3),
        user_s=round(statistics.median([r["user"] for r in runs]), 3),
        sys_s=round(statistics.median([r["sys"] for r in runs]), 3),
        rss_mib=round(statistics.median(rss), 1), rss_max_mib=round(max(rss), 1))


def machine_line(meta):
    g = lambda k: meta.get(k, "?")
    return ("%s; `nproc` %s; %s RAM; kernel %s; %s; slots and bundles on %s; load average at start %s; "
            "tandem %s (binary %s, inflate: %s); zlib %s; libdeflate %s; mbedtls %s; rauc %s; "
            "swupdate %s; %s; %s; medians of %s runs; %s" % (
                g("date"), g("nproc"), g("mem"), g("kernel"), g("cpu"), g("fs"), g("load"),
                g("tandem"), g("tandem_sha256"), g("inflate"), g("zlib"), g("libdeflate"),
                g("mbedtls"), g("rauc"), g("swupdate"), g("coreutils"), g("e2fsprogs"), g("runs"),
                "page cache dropped before each run" if g("cold") == "1"
                else "WARM cache (not root: could not drop the page cache)"))


def fmt_row(name, s, note=""):
    return "| %s | %d | %.2f (%.2f-%.2f) | %.0f | %.2f (%.2f+%.2f) | %.1f (max %.1f) | %s |" % (
        name, s["runs"], s["wall_s"], s["wall_min_s"], s["wall_max_s"], s["mib_s"] or 0,
        s["cpu_s"], s["user_s"], s["sys_s"], s["rss_mib"], s["rss_max_mib"], note)


HEAD = ("| path | runs | wall s, median (min-max) | MiB/s | CPU s, user+sys | "
        "peak RSS MiB, median (max) | notes |\n|---|---|---|---|---|---|---|")


def verdict(ok):
    return "**met**" if ok else "**missed**"


def full_section(rows, skips, meta, out):
    lines = []
    res = OrderedDict(machine=OrderedDict(meta), rows=OrderedDict(), limits=OrderedDict(),
                      targets=OrderedDict())
    names = [n for (sec, n) in list(rows) + list(skips) if sec == "full"]
    if not names:
        return lines, None
    seen = set()
    img_mib = int(meta.get("full.image_bytes", "0")) / MiB
    lines.append("### Full-image install: %d MiB ext4 image (%s, sha256 %s...), local file -> slot, "
                 "fsync + verification as each tool offers" % (
                     img_mib, meta.get("full.content", "?"), meta.get("full.image_sha256", "?")[:16]))
    lines.append("")
    lines.append(machine_line(meta))
    lines.append("")
    b = rows.get(("build", "tandem-image build"))
    if b:
        sb = summary(b)
        bsize = int(meta.get("full.bundle_bytes", "0"))
        lines.append("Bundle: `tandem-image build` (zlib level 6, %s) takes %.2f s median "
                     "(%.0f MiB/s of image, %.1f MiB peak RSS); bundle %.1f MiB = %.1f%% of the "
                     "image." % (meta.get("full.bundle_info", "?"), sb["wall_s"], sb["mib_s"],
                                 sb["rss_max_mib"], bsize / MiB, 100.0 * bsize / (img_mib * MiB)))
        lines.append("")
        res["build"] = sb
        res["build"]["bundle_bytes"] = bsize
    lines.append(HEAD)
    for n in names:
        if n in seen:
            continue
        seen.add(n)
        if ("full", n) in skips:
            lines.append("| %s | 0 | - | - | - | - | not run: %s |" % (n, skips[("full", n)]))
            res["rows"][n] = OrderedDict(skipped=skips[("full", n)])
            continue
        s = summary(rows[("full", n)])
        res["rows"][n] = s
        note = meta.get("note." + n, "")
        lines.append(fmt_row(n, s, note))
    lines.append("")

    def rate(n):
        r = res["rows"].get(n)
        return r["mib_s"] if r and "mib_s" in r else None

    inflate = rate("inflate 2 threads -> nowhere")
    for kind in ("file", "loop"):
        dd = rate("dd conv=fsync -> %s slot" % kind)
        t = res["rows"].get("tandem install -> %s slot" % kind)
        if not dd or not inflate or not t or "mib_s" not in t:
            continue
        limit = min(dd, inflate)
        which = "dd conv=fsync" if dd <= inflate else "2-thread inflate"
        frac = t["mib_s"] / limit
        res["limits"][kind] = OrderedDict(dd_mib_s=dd, inflate_mib_s=inflate, limit_mib_s=limit,
                                          limited_by=which, tandem_mib_s=t["mib_s"],
                                          fraction=round(frac, 3))
        res["targets"]["fraction_%s" % kind] = OrderedDict(
            target=TARGET_FRACTION, value=round(frac, 3), met=frac >= TARGET_FRACTION)
        lines.append("- **%s slot**: limit = slower of dd (%.0f MiB/s) and inflate (%.0f MiB/s) = "
                     "%.0f MiB/s (%s); Tandem %.0f MiB/s = **%.2f of the limit** (target >= %.2f: %s)"
                     % (kind, dd, inflate, limit, which, t["mib_s"], frac, TARGET_FRACTION,
                        verdict(frac >= TARGET_FRACTION)))
    for kind in ("file", "loop"):
        t = res["rows"].get("tandem install -> %s slot" % kind)
        if t and "rss_max_mib" in t:
            ok = t["rss_max_mib"] <= TARGET_RSS_MIB
            res["targets"]["rss_%s" % kind] = OrderedDict(target_mib=TARGET_RSS_MIB,
                                                         value_mib=t["rss_max_mib"], met=ok)
            lines.append("- **peak RSS, %s slot**: %.1f MiB (max of %d runs; target <= %.0f MiB: %s)"
                         % (kind, t["rss_max_mib"], t["runs"], TARGET_RSS_MIB, verdict(ok)))
    others = [n for n in res["rows"] if n.startswith(("rauc", "swupdate"))
              and "mib_s" in res["rows"][n]]
    t = res["rows"].get("tandem install -> loop slot")
    if others and t and "wall_s" in t:
        fastest = min(others, key=lambda n: res["rows"][n]["wall_s"])
        same_codec = [n for n in others if "zlib" in n or "gzip" in n]
        for n in same_codec:
            o = res["rows"][n]
            ok = t["wall_s"] < o["wall_s"]
            res["targets"]["faster_than_" + n] = OrderedDict(tandem_s=t["wall_s"],
                                                             other_s=o["wall_s"], met=ok)
            lines.append("- **vs %s** (same codec): Tandem %.2f s vs %.2f s: %.1fx (%s)"
                         % (n, t["wall_s"], o["wall_s"], o["wall_s"] / t["wall_s"], verdict(ok)))
        rss_small = min(res["rows"][n]["rss_max_mib"] for n in others)
        ok = t["rss_max_mib"] <= rss_small / 4
        res["targets"]["rss_quarter_of_others"] = OrderedDict(
            tandem_mib=t["rss_max_mib"], smallest_other_mib=rss_small, met=ok)
        lines.append("- **peak RSS vs RAUC/SWUpdate**: Tandem %.1f MiB, smallest of theirs %.1f MiB "
                     "(target <= a quarter: %s); fastest of theirs: %s %.2f s"
                     % (t["rss_max_mib"], rss_small, verdict(ok), fastest,
                        res["rows"][fastest]["wall_s"]))
    lines.append("")
    with open(out + "/full-install.json", "w") as f:
        json.dump(res, f, indent=2)
    return lines, res


def scaling_section(rows, skips, meta, out):
    items = [(n, summary(r)) for (sec, n), r in rows.items() if sec == "scaling"]
    if not items:
        return [], None
    lines = ["### Scaling: Tandem install of /usr-based ext4 images of several sizes into a file slot",
             "", machine_line(meta), "",
             "| image | runs | bundle MiB | wall s, median (min-max) | MiB/s | s per GiB | CPU s | "
             "peak RSS MiB, median (max) |", "|---|---|---|---|---|---|---|---|"]
    res = OrderedDict(machine=OrderedDict(meta), rows=OrderedDict())
    for n, s in items:
        bsize = int(meta.get("scaling.bundle." + n, "0"))
        s["bundle_bytes"] = bsize
        res["rows"][n] = s
        lines.append("| %s | %d | %.1f | %.2f (%.2f-%.2f) | %.0f | %.2f | %.2f | %.1f (max %.1f) |" % (
            n, s["runs"], bsize / MiB, s["wall_s"], s["wall_min_s"], s["wall_max_s"], s["mib_s"],
            s["wall_s"] / (s["bytes"] / MiB / 1024), s["cpu_s"], s["rss_mib"], s["rss_max_mib"]))
    rss = [s["rss_max_mib"] for _, s in items]
    spg = [s["wall_s"] / (s["bytes"] / MiB / 1024) for _, s in items]
    res["rss_spread_mib"] = round(max(rss) - min(rss), 2)
    lines.append("")
    lines.append("- peak RSS from %.1f to %.1f MiB across a %.0fx range of image sizes; time per GiB "
                 "from %.2f to %.2f s" % (min(rss), max(rss),
                                          items[-1][1]["bytes"] / items[0][1]["bytes"],
                                          min(spg), max(spg)))
    lines.append("")
    with open(out + "/scaling.json", "w") as f:
        json.dump(res, f, indent=2)
    return lines, res


def footprint_section(meta, out):
    names = []
    for k in meta:
        if k.startswith("footprint.") and k.endswith(".size"):
            names.append(k[len("footprint."):-len(".size")])
    if not names:
        return []
    lines = ["### Footprint: device binary, stripped", "",
             "| binary | stripped bytes | KiB | `ldd` lines | notes |", "|---|---|---|---|---|"]
    res = OrderedDict()
    for n in names:
        size = meta["footprint.%s.size" % n]
        ldd = meta.get("footprint.%s.ldd" % n, "?")
        note = meta.get("footprint.%s.note" % n, "")
        if size.isdigit():
            lines.append("| %s | %s | %.0f | %s | %s |" % (n, size, int(size) / 1024.0, ldd, note))
            res[n] = OrderedDict(stripped_bytes=int(size), ldd_lines=ldd, note=note)
        else:
            lines.append("| %s | - | - | - | not measured: %s |" % (n, size))
            res[n] = OrderedDict(skipped=size)
    default = res.get("tandem (default config)")
    if default and "stripped_bytes" in default:
        ok = default["stripped_bytes"] < 256 * 1024
        lines.append("")
        lines.append("- default configuration: %.0f KiB stripped (target < 256 KiB: %s)"
                     % (default["stripped_bytes"] / 1024.0, verdict(ok)))
    lines.append("")
    with open(out + "/footprint.json", "w") as f:
        json.dump(res, f, indent=2)
    return lines


def main():
    raw, meta_path, out = sys.argv[1:4]
    rows, skips, meta, errors = load(raw, meta_path)
    lines = []
    lines += full_section(rows, skips, meta, out)[0]
    lines += scaling_section(rows, skips, meta, out)[0]
    lines += footprint_section(meta, out)
    if "duration_s" in meta:
        lines.append("(benchmark run took %s s)" % meta["duration_s"])
        lines.append("")
    if errors:
        lines.append("### WRONG RESULTS in this run")
        lines += ["- " + e for e in errors]
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
