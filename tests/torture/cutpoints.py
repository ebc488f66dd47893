# SPDX-License-Identifier: MIT
"""Runs the cut points of a plan (made by run.sh) and checks the invariants.

    cutpoints.py WORK TANDEM SHIM RESTORE BUILD_REL PLAN

One process for the whole plan: on a loaded machine a Python start costs
about a second, a cut point a tenth of that. Each plan line is
"SCENARIO MODE N [DELAY]"; the scenarios are in WORK/scenarios.json and
the templates (devices as they were before the command) in WORK/tpl/.

After each cut:
  1. the environment parses (fw_printenv -c succeeds, counters are numbers);
  2. the slot the boot script would boot next (BOOT_ORDER's first slot
     with tries left; none left: the first one) is the booted slot, or
     holds a complete image whose hash state.json records as installed or
     good (a factory image, proven by booting, has no hash: then it must
     be unchanged); the booted slot's content never changed;
  3. state.json parses (or is absent where the template had none), no
     harness leftover, and `tandem status` works;
  4. the same command run again exits as a complete run does, leaves what
     a complete run leaves (scenario "post"), and 1-3 hold again;
  5. an identity the environment keeps for a slot (TANDEM_X_IMAGE) is
     true: the slot holds that image byte for byte.
Then, from the device as the cut left it, twice (health checks passing,
then failing): a power-up as U-Boot's script does it (tests/lib/
bootmodel.py), `tandem confirm`, the same command again, and after each
1-3 and 5 again (the slot booted never changes), and
  6. nothing is reported failed or marked bad that was not tried and
     failed;
  7. the anti-rollback floor (the higher of the environment's and the
     state's) never drops.
Only a run that was killed counts as a cut: one that finished before its
cut point is checked and reported apart.

With TORTURE_BLK set (run.sh --blk: a file of "LOOP_A LOOP_B" lines, the
first for WORK/dev, then one for each worker), the slots are loop devices:
the templates keep their content as slotA.img and slotB.img, copied into
the worker's pair on every load, and one page of slot B is held in the
page cache (blkpin.py) so that B's read-back takes the O_DIRECT path.
"""
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bootmodel  # noqa: E402  (the one model of the U-Boot script's choice)
import blkpin  # noqa: E402  (tests/torture/blkpin.py)
import grubenv  # noqa: E402  (GRUB's block, and grub.cfg's choice in the same model)

MODES = ("kill", "tear", "lost", "lostrand", "timed", "timedlost")

# Known bugs reported to the updater's owner and not fixed yet. Each entry
# matches on the scenario, the mode(s) and the symptom text, so that any
# other failure of the same case still fails. Listed by name in the
# output; they count as neither passed nor failed.
KNOWN_BUGS = [
    # (name, scenarios, modes, symptom substring): a bug found and not yet
    # fixed is listed here so the rest stays checked. Empty: the one found
    # (install saved "installing" before disabling the target in the
    # environment) was fixed in updater/install/transaction.c.
]


class Broken(Exception):
    pass


def sha(path, size=None):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read() if size is None else f.read(size)).hexdigest()


class Runner:
    def __init__(self, work, tandem, shim, restore, build_rel, dev, loops=None):
        self.work, self.tandem, self.shim, self.restore = work, tandem, shim, restore
        self.build_rel = build_rel
        self.dev = dev
        self.conf = f"{self.dev}/tandem.conf"
        self.scen = json.load(open(f"{work}/scenarios.json"))
        # v3 (--blk only): 17 MiB, more than one read-back window
        self.images = {v: open(f"{work}/{v}.img", "rb").read() for v in ("v1", "v2", "v3")
                       if os.path.exists(f"{work}/{v}.img")}
        self.image_sha = {k: hashlib.sha256(v).hexdigest() for k, v in self.images.items()}
        # --blk: the bytes of a slot that count (its template's size: the
        # loop devices are larger, for v3); None: the whole file
        self.size = None
        # --blk: {"A": "/dev/loopN", "B": ...}; None: the slots are files
        self.blk = dict(zip("AB", loops)) if loops else None
        if self.blk:
            self.pin = blkpin.pin(self.blk["B"])  # held for the worker's life

    def slot(self, n):
        return self.blk[n] if self.blk else f"{self.dev}/slot{n}.img"

    def whole(self, n):
        """The SHA-256 of slot n as the template's is taken."""
        return sha(self.slot(n), self.size)

    def _copy_in(self, src):
        """The device dir src (a template, a saved cut) becomes the device;
        with --blk its slot files go into the loop devices instead (what
        lies after them on the device is never read)."""
        shutil.rmtree(self.dev, ignore_errors=True)
        skip = shutil.ignore_patterns("slotA.img", "slotB.img") if self.blk else None
        shutil.copytree(src, self.dev, symlinks=True, ignore=skip)
        if self.blk:
            self.size = os.path.getsize(f"{src}/slotA.img")
            for n in "AB":
                data = open(f"{src}/slot{n}.img", "rb").read()
                fd = os.open(self.blk[n], os.O_WRONLY | os.O_CLOEXEC)
                try:
                    if os.pwrite(fd, data, 0) != len(data):
                        raise OSError(f"short write to {self.blk[n]}")
                finally:
                    os.close(fd)

    def _copy_out(self, dst):
        """The device as it is now, saved to dst (slots as files with --blk)."""
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(self.dev, dst, symlinks=True)
        if self.blk:
            for n in "AB":
                with open(self.blk[n], "rb") as f, open(f"{dst}/slot{n}.img", "wb") as o:
                    o.write(f.read(self.size))

    def load_tpl(self, name):
        # A copy in this process (a cp would be one more process per cut
        # point), with the device's own path written into its configuration.
        self._copy_in(f"{self.work}/tpl/{name}")
        for f in ("tandem.conf", "fw_env.config"):
            p = f"{self.dev}/{f}"
            if not os.path.exists(p):
                continue  # a GRUB device has no fw_env.config
            t = open(p).read().replace(f"{self.work}/dev/", f"{self.dev}/")
            open(p, "w").write(t)
        if self.blk:
            c = json.load(open(self.conf))
            c["slots"] = dict(self.blk)
            json.dump(c, open(self.conf, "w"), indent=1)
        return json.load(open(f"{self.work}/tpl/{name}.json"))

    def cmd(self, s):
        return [self.tandem, "-c", self.conf, "-q"] + s["cmd"].replace("WORK", self.work).split()

    # ------------------------------------------------------------ checks
    def env(self, when):
        if os.path.exists(f"{self.dev}/grubenv"):
            # GRUB: the block must parse as the updater reads it, and is
            # checked through the U-Boot model's view of it (grubenv.py).
            try:
                g = grubenv.parse(f"{self.dev}/grubenv")
            except (OSError, ValueError) as ex:
                raise Broken(f"invariant 1 ({when}): the GRUB environment does not parse: {ex}")
            for k in ("A_OK", "B_OK"):
                if g.get(k, "1") not in ("0", "1"):
                    raise Broken(f"invariant 1 ({when}): {k}={g[k]!r}")
            for k in ("A_TRY", "B_TRY", "TANDEM_BOOT_TRIES"):
                if not g.get(k, "0" if k != "TANDEM_BOOT_TRIES" else "3").isdigit():
                    raise Broken(f"invariant 1 ({when}): {k}={g[k]!r}")
            return grubenv.view(g)
        p = subprocess.run(["fw_printenv", "-c", f"{self.dev}/fw_env.config"],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0 or "Cannot read environment" in p.stderr:
            raise Broken(f"invariant 1 ({when}): the environment does not parse: {p.stderr.strip()}")
        e = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
        for s in "AB":
            if not e.get(f"BOOT_{s}_LEFT", "3").isdigit():
                raise Broken(f"invariant 1 ({when}): BOOT_{s}_LEFT={e[f'BOOT_{s}_LEFT']!r}")
        return e

    @staticmethod
    def next_slot(e):
        return bootmodel.select(e)[0]

    def state(self, tpl, when):
        p = f"{self.dev}/state/state.json"
        if not os.path.exists(p):
            if tpl["had_state"]:
                raise Broken(f"invariant 3 ({when}): state.json disappeared")
            return {}
        try:
            st = json.load(open(p))
        except ValueError as ex:
            raise Broken(f"invariant 3 ({when}): state.json does not parse: {ex}")
        if not isinstance(st, dict):
            raise Broken(f"invariant 3 ({when}): state.json is not an object")
        return st

    def booted(self):
        return open(f"{self.dev}/cmdline").read().split("tandem.slot=")[1].split()[0]

    def invariants(self, tpl, when, ref=None):
        """ref: the slots' hashes the booted one must still have (default:
        the template's; after a power-up, what it booted)."""
        e = self.env(when)
        st = self.state(tpl, when)
        booted = self.booted()
        if self.whole(booted) != (ref or tpl["slots"])[booted]:
            raise Broken(f"invariant 2 ({when}): the booted slot {booted} changed")
        n = self.next_slot(e)
        envs = (f'BOOT_ORDER="{e.get("BOOT_ORDER")}" BOOT_A_LEFT={e.get("BOOT_A_LEFT")} '
                f'BOOT_B_LEFT={e.get("BOOT_B_LEFT")}')
        if n != booted:
            si = st.get("slots", {}).get(n, {})
            content = sha(self.slot(n), si.get("size") or 1 << 20)
            images = {h: k for k, h in self.image_sha.items()}
            what = images.get(content, "the template's content" if
                              self.whole(n) == tpl["slots"][n] else "no known image")
            if si.get("state") not in ("installed", "good"):
                raise Broken(f"invariant 2 ({when}): slot {n} boots next ({envs}) but state.json "
                             f"says {si.get('state', 'nothing')!r} (the slot holds {what})")
            if si.get("sha256"):
                if sha(self.slot(n), si["size"]) != si["sha256"]:
                    raise Broken(f"invariant 2 ({when}): slot {n} boots next ({envs}) but does not "
                                 f"hold the image state.json records ({si['state']}); it holds {what}")
            elif self.whole(n) != tpl["slots"][n]:
                raise Broken(f"invariant 2 ({when}): slot {n} boots next ({envs}), has no recorded "
                             f"hash and changed; it holds {what}")
        # Stronger than "next": any other slot with tries left is reachable
        # by a fallback, so it must not be partly written either.
        for o in "AB":
            if o in (booted, n) or int(e.get(f"BOOT_{o}_LEFT", "3")) == 0:
                continue
            si = st.get("slots", {}).get(o, {})
            whole = self.whole(o)
            if whole == tpl["slots"][o] or (si.get("sha256") and sha(
                    self.slot(o), si["size"]) == si["sha256"]):
                continue
            if any(open(self.slot(o), "rb").read(len(v)) == v
                   for v in self.images.values() if self.size is None or len(v) <= self.size):
                continue
            raise Broken(f"invariant 2 ({when}): slot {o} can boot after a fallback ({envs}) "
                         f"and holds no complete image")
        # Invariant 5: what the environment vouches a slot holds
        # (TANDEM_X_IMAGE, which activate, rollback and confirm trust
        # over state.json) is true, byte for byte.
        for o in "AB":
            v = e.get(f"TANDEM_{o}_IMAGE")
            if not v or v == "erased":
                continue
            want = v.split(":", 1)[-1]
            img = next((self.images[k] for k, h in self.image_sha.items() if h == want), None)
            if img is None or open(self.slot(o), "rb").read(len(img)) != img:
                raise Broken(f"invariant 5 ({when}): the environment says slot {o} holds {v}, "
                             f"and it does not")
        leftovers = [f for f in os.listdir(f"{self.dev}/state") if "cutshim" in f]
        if leftovers:
            raise Broken(f"harness: shim leftovers {leftovers}")
        p = subprocess.run([self.tandem, "-c", self.conf, "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise Broken(f"invariant 3 ({when}): tandem status exits {p.returncode}: {p.stderr.strip()}")
        return e, st

    def post(self, s, e, st):
        kind, slot = s["post"].split()[:2]
        si = st.get("slots", {}).get(slot, {})
        left = int(e.get(f"BOOT_{slot}_LEFT", "3"))
        order = e.get("BOOT_ORDER", "A B").split()
        pending = st.get("pending_slot")
        bad = []
        if kind == "install":
            v = s["post"].split()[2]
            img = self.images[v]
            with open(self.slot(slot), "rb") as f:
                if f.read(len(img)) != img:
                    bad.append(f"slot {slot} does not hold {v} byte for byte")
            if si.get("state") != "installed" or si.get("sha256") != hashlib.sha256(img).hexdigest():
                bad.append(f"slot {slot} recorded as {si}")
            if st.get("last_install", {}).get("result") != "success":
                bad.append(f"last_install {st.get('last_install')}")
            if s["post"].endswith(" activate"):
                if order[0] != slot or left != 3 or pending != slot:
                    bad.append(f"not activated: order {order}, {left} tries, pending {pending}")
            elif left != 0:
                bad.append(f"--no-activate left slot {slot} with {left} tries")
        elif kind == "confirmed":
            if si.get("state") != "good" or pending or left != 3 or \
                    st.get("last_update", {}).get("result") != "success":
                bad.append(f"not confirmed: {si}, pending {pending}, {left} tries, "
                           f"last_update {st.get('last_update')}")
        elif kind == "fellback":
            if si.get("state") != "bad" or pending or left != 0 or \
                    st.get("last_update", {}).get("result") != "failed" or \
                    st["slots"]["A"].get("state") != "good":
                bad.append(f"fallback not recorded: {st}")
        elif kind == "unhealthy":
            if si.get("state") != "bad" or order[0] == slot or left != 0:
                bad.append(f"unhealthy slot kept: {si}, order {order}, {left} tries")
        elif kind == "activated":
            if order[0] != slot or left != 3 or pending != slot:
                bad.append(f"not activated: order {order}, {left} tries, pending {pending}")
        if bad:
            raise Broken("invariant 4: after the rerun: " + "; ".join(bad))

    # ------------------------------------------------------------ one cut
    def cut(self, name, mode, n, delay=None):
        s = self.scen[name]
        tpl = self.load_tpl(s["tpl"])
        j = f"{self.dev}.journal"
        if os.path.exists(j):
            os.unlink(j)
        env = dict(os.environ, CUTSHIM_DIR=self.dev, LD_PRELOAD=self.shim)
        if self.blk:
            env["CUTSHIM_BLK"] = ":".join(self.blk.values())
        if mode in ("kill", "tear", "lost", "lostrand"):
            env["CUTSHIM_CUT"] = str(n)
        if mode == "tear":
            env["CUTSHIM_TEAR"] = "1"
            if os.path.exists(f"{self.dev}/grubenv"):
                # GRUB's block has no checksum: only storage that writes
                # whole sectors keeps it (docs/boot-protocol.md, "GRUB").
                env["CUTSHIM_TEAR_SECTOR"] = "512"
        if mode in ("lost", "lostrand", "timedlost"):
            env["CUTSHIM_JOURNAL"] = j
        p = subprocess.Popen(self.cmd(s), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=delay if delay is not None else 120)
        except subprocess.TimeoutExpired:
            p.kill()  # SIGKILL: the power cut
            _, err = p.communicate()
        rc = p.returncode
        restored = ""
        if mode in ("lost", "lostrand", "timedlost"):
            seed = str(n) if mode == "lostrand" else "0"
            restored = subprocess.run([self.restore, j, self.dev, seed], capture_output=True,
                                      text=True, check=True, timeout=60).stdout.strip()
        try:
            self.invariants(tpl, "after the cut")
            cut = f"{self.dev}.cut"
            self._copy_out(cut)
            # The process died (a crash, an OOM kill) and the system runs on:
            p2 = subprocess.run(self.cmd(s), capture_output=True, text=True, timeout=120)
            if p2.returncode != s["rc"]:
                raise Broken(f"invariant 4: the rerun exits {p2.returncode}, expected {s['rc']}: "
                             f"{p2.stderr.strip()}")
            e, st = self.invariants(tpl, "after the rerun")
            self.post(s, e, st)
            # The power was cut: the device boots again and confirms, with
            # its health checks passing and with them failing.
            for healthy in (True, False):
                self._copy_in(cut)
                self.power_up(name, s, tpl, healthy)
        except Broken as b:
            return str(b), rc, err.decode(errors="replace").strip(), restored, 0
        return None, rc, "", restored, 2

    # ------------------------------------------------- after a power-up
    def fleet_goes_on(self, s, e, st, when):
        """Invariant 8: a cut never leaves an install that was to be
        activated where a fleet's next poll would give up on it: the
        booted slot holds the image (up-to-date), or the target is
        activated (pending, first with tries), or noted as interrupted
        and vouched for by the environment (the poll activates it), or
        not recorded as installed (the poll installs it again)."""
        _, x, v = s["post"].split()[:3]
        img = self.image_sha[v]
        booted = self.booted()
        xi = st.get("slots", {}).get(x, {})
        if st.get("slots", {}).get(booted, {}).get("sha256") == img:
            return
        if xi.get("state") != "installed" or xi.get("sha256") != img:
            return
        if st.get("pending_slot") == x and e.get("BOOT_ORDER", "").split()[:1] == [x] and \
                int(e.get(f"BOOT_{x}_LEFT") or 0) > 0:
            return
        if st.get("interrupted_slot") == x and \
                e.get(f"TANDEM_{x}_IMAGE", "").split(":")[-1] == img:
            return
        raise Broken(f"invariant 8 ({when}): slot {x} holds {v}, installed to be activated, but "
                     f"is neither activated nor noted as interrupted: a fleet would leave it "
                     f"for good (pending {st.get('pending_slot')}, BOOT_ORDER "
                     f"{e.get('BOOT_ORDER')!r})")

    def floor(self, e, st):
        env = int(e.get("TANDEM_SECURITY_FLOOR") or 0)
        return max(env, int(st.get("security_floor") or 0))

    def power_up(self, name, s, tpl, healthy):
        """Boots the cut device as U-Boot would (tests/lib/bootmodel.py),
        runs `tandem confirm` with passing or failing health checks, then
        the scenario's command again, checking after each step that:
          1-3 and 5 hold (the booted slot, whatever it is, never changes);
          6. no release is reported failed, and no slot newly marked bad,
             unless it was tried and failed (booted with a failing check,
             or the template's own tried-and-fallen-back or unhealthy
             slot);
          7. the anti-rollback floor never drops."""
        when = "after a power-up and a " + ("passing" if healthy else "failing") + " confirm"
        e0, st0 = self.env("before the power-up"), self.state(tpl, "before the power-up")
        floor0 = self.floor(e0, st0)
        slot = bootmodel.boot(self.dev)
        ref = {n: self.whole(n) for n in "AB"}
        hd = f"{self.dev}/health.d"
        for f in os.listdir(hd):
            os.unlink(os.path.join(hd, f))
        if not healthy:
            with open(f"{hd}/10-app", "w") as f:
                f.write("#!/bin/sh\necho app down >&2\nexit 3\n")
            os.chmod(f"{hd}/10-app", 0o755)
        p = subprocess.run([self.tandem, "-c", self.conf, "-q", "confirm"], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != (0 if healthy else 24):
            raise Broken(f"invariant 4 ({when}): confirm on slot {slot} exits {p.returncode}: "
                         f"{p.stderr.strip()}")
        e, st = self.invariants(tpl, when, ref)
        tried = {slot} if not healthy else set()
        if name in ("confirm_fallback", "confirm_unhealthy"):
            tried.add("B")  # the template's B was tried and failed
        u0, u = st0.get("last_update", {}), st.get("last_update", {})
        if u != u0 and u.get("result") == "failed" and u.get("slot") not in tried:
            raise Broken(f"invariant 6 ({when}, slot {slot} booted): slot {u.get('slot')} is "
                         f"reported failed but was never tried: {u}")
        for n in "AB":
            was = st0.get("slots", {}).get(n, {}).get("state")
            now = st.get("slots", {}).get(n, {}).get("state")
            if now == "bad" and was != "bad" and n not in tried:
                raise Broken(f"invariant 6 ({when}, slot {slot} booted): slot {n} marked bad "
                             f"but never tried")
        if self.floor(e, st) < floor0:
            raise Broken(f"invariant 7 ({when}): the floor dropped from {floor0} to "
                         f"{self.floor(e, st)}")
        if healthy and s["post"].startswith("install ") and s["post"].endswith(" activate"):
            self.fleet_goes_on(s, e, st, when)
        # ... and the device goes on: the same command again.
        p = subprocess.run(self.cmd(s), capture_output=True, text=True, timeout=120)
        if p.returncode not in (0, 13, 24, 25):
            raise Broken(f"invariant 4 ({when}): then `{s['cmd'].replace('WORK/', '')}` exits "
                         f"{p.returncode}: {p.stderr.strip()}")
        e2, st2 = self.invariants(tpl, when + " and the command again", ref)
        if self.floor(e2, st2) < floor0:
            raise Broken(f"invariant 7 ({when} and the command again): the floor dropped")


_runner = None


def _loops(first):
    """--blk: the loop devices of WORK/dev (first) or the pair this worker
    claims (the first not yet taken); None without --blk."""
    f = os.environ.get("TORTURE_BLK")
    if not f:
        return None
    pairs = [l.split() for l in open(f) if l.split()]
    if first:
        return pairs[0]
    work = os.path.dirname(f)
    for i, pair in enumerate(pairs[1:]):
        try:
            os.close(os.open(f"{work}/blk.claim.{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return pair
        except FileExistsError:
            continue
    raise RuntimeError("more workers than loop device pairs")


def _init(args):
    global _runner
    work = args[0]
    # Each worker process has a device directory (and loop devices) of its own.
    _runner = Runner(*args, f"{work}/dev-{os.getpid()}", _loops(False))


def _cut(line):
    f = line.split()
    name, mode, n = f[0], f[1], int(f[2])
    delay = float(f[3]) if len(f) > 3 else None
    return name, mode, n, delay, _runner.cut(name, mode, n, delay)


def main():
    work, tandem, shim, restore, build_rel, plan, jobs = sys.argv[1:8]
    args = (work, tandem, shim, restore, build_rel)
    scen = json.load(open(f"{work}/scenarios.json"))
    lines = [l for l in open(plan) if l.split()]
    passed = failed = xfailed = outlived = powerups = real = 0
    outlived_cut = 0  # in the modes that cut at a call: a plan that does not fit the run
    per_mode = dict.fromkeys(MODES, 0)
    if int(jobs) > 1:
        pool = multiprocessing.Pool(int(jobs), _init, (args,))
        results = pool.imap(_cut, lines)
    else:
        global _runner
        _runner = Runner(*args, f"{work}/dev", _loops(True))
        results = map(_cut, lines)
    for name, mode, n, delay, (problem, rc, err, restored, ups) in results:
        per_mode[mode] += 1
        powerups += ups
        real += rc == -9
        if not problem:
            # Only a run that was killed is a cut: one that finished before
            # its cut point (a timed cut after the end, by design; a run
            # with fewer calls than the plan's) was checked, not counted.
            if rc == -9:
                passed += 1
            else:
                outlived += 1
                outlived_cut += delay is None
            continue
        known = [b[0] for b in KNOWN_BUGS if name in b[1] and mode in b[2] and b[3] in problem]
        if known:
            xfailed += 1
            print(f"XFAIL {name} {mode} N={n}: known bug \"{known[0]}\": {problem}", flush=True)
            continue
        failed += 1
        what = ""
        try:
            for t in open(f"{work}/trace.{name}"):
                if t.split()[0] == str(n):
                    what = " ".join(t.split()[1:])
        except OSError:
            pass
        cmd = scen[name]["cmd"].replace("WORK/", "")
        print(f"FAIL  {name}: mode {mode}, cut point N={n}"
              + (f" (SIGKILL after {delay:.3f} s)" if delay is not None else "")
              + (f", before write-path call \"{what}\" of a complete run" if what and delay is None else ""))
        print(f"      tandem {cmd}: exit status {rc}" + (" (SIGKILL)" if rc == -9 else "")
              + (f", stderr: {err}" if err else ""))
        if restored:
            print(f"      lost-writes restore: {restored}")
        print(f"      {problem}")
        backend = os.environ.get("SIM_BOOTLOADER", "uboot")
        print(f"      reproduce: tests/torture/run.sh --build {build_rel} --one {name} {mode} {n}"
              + (f" --backend {backend}" if backend != "uboot" else ""), flush=True)
    took = int(time.time()) - int(os.environ.get("TORTURE_START", int(time.time())))
    print("cut points per mode: " + ", ".join(f"{m} {c}" for m, c in per_mode.items())
          + f"; {took} s in all, {jobs} jobs")
    print(f"{real} real cuts (tandem killed), {outlived} runs that finished before "
          f"their cut point ({outlived_cut} of them at a call: checked, not counted); "
          f"{powerups} power-ups, each followed by a confirm and the command again")
    if xfailed:
        print(f"{xfailed} cut points failed on known bugs (XFAIL, listed above; not counted below)")
    # A plan whose call numbers the runs do not reach tests nothing there.
    if outlived_cut * 20 > len(lines):
        print(f"FAIL  {outlived_cut} of {len(lines)} cut points at a call were never reached: "
              "the plan does not fit the runs")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
