#!/usr/bin/env python3
"""asan-cover.py ROOT COVDIR TAPDIR: the comparison of tests/tools/asan-cover.

COVDIR/SUITE/TEST holds the .gcda files of one test (COVDIR/unit/BINARY of a
unit test, COVDIR/SUITE/setup of a setup_file), under the gcov tree's path.
A test's coverage: every line of lib/ and cmd/ it ran, and every branch it
took. The ASan run covers the unit tests, the setups and the tests not marked
asan_covered_elsewhere."""
import glob, gzip, json, os, re, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor

root, cov, taps = sys.argv[1:4]

def gcov(objdir, gcno_dir):
    keys = set()
    gcdas = glob.glob(objdir + "/*.gcda")
    for g in gcdas:
        n = os.path.basename(g)[:-5] + ".gcno"
        if not os.path.exists(os.path.join(objdir, n)) and os.path.exists(os.path.join(gcno_dir, n)):
            os.symlink(os.path.join(gcno_dir, n), os.path.join(objdir, n))
    if not gcdas:
        return keys
    with tempfile.TemporaryDirectory() as td:
        subprocess.run(["gcov", "-j", "-b", "-o", objdir] + gcdas, cwd=td,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for jf in glob.glob(td + "/*.gcov.json.gz"):
            for f in json.load(gzip.open(jf))["files"]:
                if not f["file"].startswith(("lib/", "cmd/")):
                    continue
                for l in f["lines"]:
                    if l["count"] > 0:
                        keys.add((f["file"], l["line_number"]))
                        keys.update((f["file"], l["line_number"], i)
                                    for i, b in enumerate(l["branches"]) if b["count"] > 0)
    return keys

def test_keys(tdir):
    ks = set()
    for sub in ("lib", "bin", "tests"):
        d = tdir + root + "/build-cov/" + sub
        if os.path.isdir(d):
            ks |= gcov(d, root + "/build-cov/" + sub)
    return ks

dirs = sorted(glob.glob(cov + "/*/*"))
with ThreadPoolExecutor(os.cpu_count() or 2) as ex:
    keys = dict(zip(dirs, ex.map(test_keys, dirs)))

# Which tests are marked, their names and seconds (bats --timing).
marked, names, secs = set(), {}, {}
for bats in glob.glob(root + "/tests/*.bats"):
    suite = os.path.basename(bats)[:-5]
    n = 0
    for line in open(bats):
        if line.startswith("@test "):
            n += 1
        elif n and re.match(r"\s*asan_covered_elsewhere\b", line):
            marked.add("%s/%s/%d" % (cov, suite, n))
    tap = os.path.join(taps, suite + ".bats.tap")
    if os.path.exists(tap):
        for line in open(tap):
            m = re.match(r"(?:not )?ok (\d+) (.*?)(?: in (\d+)ms)?$", line.rstrip("\n"))
            if m:
                d = "%s/%s/%s" % (cov, suite, m.group(1))
                names[d] = m.group(2)
                secs[d] = int(m.group(3) or 0) / 1000

count = {}
for d, ks in keys.items():
    if d not in marked:
        for k in ks:
            count[k] = count.get(k, 0) + 1

def show(d):
    return "%s %s (%.1f s)" % (os.path.relpath(d, cov), names.get(d, "?"), secs.get(d, 0))

bad = 0
for d in sorted(marked, key=lambda d: -secs.get(d, 0)):
    if d not in keys:
        print("NO DATA  " + show(d))
        bad += 1
        continue
    left = sorted(k for k in keys[d] if k not in count)
    if left:
        bad += 1
        print("UNCOVERED %s: %d lines or branches only it runs, e.g. %s" % (show(d), len(left), left[:3]))
    else:
        print("covered  " + show(d))
for d in sorted(keys, key=lambda d: -secs.get(d, 0)):
    if d in marked or "/unit/" in d or d.endswith("/setup") or not keys[d]:
        continue
    if all(count[k] > 1 for k in keys[d]):
        print("candidate " + show(d))
print("asan-cover: %d marked tests, %d with code no test of the ASan run covers" % (len(marked), bad))
sys.exit(1 if bad else 0)
