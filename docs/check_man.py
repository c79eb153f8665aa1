#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check the library's man pages (docs/man/*.3 and *.7).

- Every public function of include/multiproc/*.h appears, as NAME(, in the
  SYNOPSIS of some section 3 page, so a new function cannot go
  undocumented.
- Every page renders with `groff -man -ww -z` without a single warning
  (skipped, exit status 7, when groff is not installed).
- A link page (".so man3/X.3") names a page that exists.

Usage: check_man.py --root SRC_DIR
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

PUBLIC = re.compile(r"^(?:MP_EXTERN|static inline)\b[^;{]*?\b(mp_\w+)\s*\(",
                    re.M)


def synopsis(text):
    m = re.search(r"^\.SH\s+SYNOPSIS\s*$(.*?)^\.SH\b", text, re.M | re.S)
    return m.group(1) if m else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    a = ap.parse_args()
    mandir = os.path.join(a.root, "docs", "man")
    pages = sorted(glob.glob(os.path.join(mandir, "*.3")) +
                   glob.glob(os.path.join(mandir, "*.7")))
    errors = []

    functions = set()
    for h in glob.glob(os.path.join(a.root, "include", "multiproc", "*.h")):
        with open(h, encoding="utf-8") as f:
            # Join continuation lines so a wrapped declaration still reads
            # "MP_EXTERN type name(".
            functions.update(PUBLIC.findall(f.read()))

    real, links = [], []
    documented = set()
    for p in pages:
        with open(p, encoding="utf-8") as f:
            text = f.read()
        m = re.match(r"\.so\s+(\S+)\s*$", text)
        if m:
            links.append(p)
            if not os.path.exists(os.path.join(mandir,
                                               os.path.basename(m.group(1)))):
                errors.append("%s: links to %s, which is not in docs/man"
                              % (p, m.group(1)))
            continue
        real.append(p)
        if p.endswith(".3"):
            documented.update(re.findall(r"\b(mp_\w+)\(", synopsis(text)))
    for fn in sorted(functions - documented):
        errors.append("%s: in the public header but in no man page's "
                      "SYNOPSIS" % fn)

    groff = shutil.which("groff")
    if groff:
        for p in real:
            r = subprocess.run([groff, "-man", "-ww", "-z", p],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=30)
            msg = r.stderr.decode("utf-8", "replace").strip()
            if r.returncode != 0 or msg:
                errors.append("%s: groff -man -ww: %s" % (p, msg or
                                                          "failed"))

    if errors:
        for e in errors:
            print("FAIL " + e)
        return 1
    print("ok: %d pages, %d links, %d public functions documented"
          % (len(real), len(links), len(functions)))
    if not groff:
        print("groff not found: rendering not checked")
        return 7
    return 0


if __name__ == "__main__":
    sys.exit(main())
