#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check that the tutorials show the examples as they are.

Every fenced block in a tutorial must follow a marker line (an HTML
comment, invisible once rendered):

    <!-- check: source examples/01-process.c -->
        The block is a verbatim run of contiguous lines of that file, and
        the prose since the previous block names the file.

    <!-- check: output 01-process MODE -->
        The block is what build/examples/01-process prints on stdout (a
        leading "$ ..." command line is not part of it).  MODE says how
        far the output can be trusted to repeat:
          exact      byte for byte (apart from the trailing newline);
          unordered  the same lines, in any order (processes interleave);
          numbers    the same text once every number is blanked out
                     (timings, counts that depend on the machine);
          varies     not compared (a race, for example); the example is
                     still checked to exist.
        Examples that need the network are only marked "varies".

    <!-- check: none -->
        Not checked (shell commands, mpget usage).

With several tutorials (the translations), their source and output blocks
must also be the same, in the same order.

Usage: check_tutorial.py --root SRC_DIR --bin EXAMPLES_BUILD_DIR FILE...
Exit status: 0 when everything matches, 1 otherwise.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

MARKER = re.compile(r"^<!--\s*check:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)(.*)$")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
EXAMPLE_PATH = re.compile(r"examples/[\w.-]+\.c")
RUN_TIMEOUT = 30
TRIES = 3  # a mismatch must repeat before it counts: edits always do


class Block:
    def __init__(self, doc, line, kind, args, text, prose):
        self.doc = doc
        self.line = line
        self.kind = kind
        self.args = args
        self.text = text
        self.prose = prose

    def where(self):
        return "%s:%d" % (self.doc, self.line)


def closes(line, fence):
    """Whether line closes a block opened with fence (``` or ~~~)."""
    t = line.strip()
    return len(t) >= len(fence) and t == fence[0] * len(t)


def parse(path):
    """Return the blocks of one tutorial, and the errors found parsing it."""
    errors = []
    blocks = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    prose = []
    marker = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if m:
            if marker:
                errors.append("%s:%d: marker not followed by a block"
                              % (path, marker[0]))
            marker = (i + 1, m.group(1).split())
            i += 1
            continue
        f = FENCE.match(line)
        if not f:
            if marker and line.strip():
                errors.append("%s:%d: marker not followed by a block"
                              % (path, marker[0]))
                marker = None
            prose.append(line)
            i += 1
            continue
        fence = f.group(1)
        start = i + 1
        j = start
        while j < len(lines) and not closes(lines[j], fence):
            j += 1
        if j == len(lines):
            errors.append("%s:%d: unterminated code block" % (path, i + 1))
            break
        body = "\n".join(lines[start:j])
        if not marker:
            errors.append("%s:%d: code block without a <!-- check: ... --> "
                          "marker line before it" % (path, i + 1))
        else:
            words = marker[1]
            if not words:
                errors.append("%s:%d: empty marker" % (path, marker[0]))
            else:
                blocks.append(Block(path, i + 1, words[0], words[1:], body,
                                    "\n".join(prose)))
        marker = None
        prose = []
        i = j + 1
    if marker:
        errors.append("%s:%d: marker not followed by a block"
                      % (path, marker[0]))
    return blocks, errors


def check_source(block, root):
    if len(block.args) != 1 or not EXAMPLE_PATH.fullmatch(block.args[0]):
        return ["%s: 'source' wants one examples/NAME.c path"
                % block.where()]
    rel = block.args[0]
    path = os.path.join(root, rel)
    try:
        with open(path, encoding="utf-8") as f:
            file_lines = f.read().split("\n")
    except OSError as e:
        return ["%s: cannot read %s: %s" % (block.where(), rel, e.strerror)]
    errors = []
    if rel not in block.prose:
        errors.append("%s: the text above the block does not say it comes "
                      "from %s" % (block.where(), rel))
    want = block.text.split("\n")
    n = len(want)
    for k in range(len(file_lines) - n + 1):
        if file_lines[k:k + n] == want:
            return errors
    # Say where it stops matching, from the best starting point.
    best, best_len = 0, -1
    for k in range(len(file_lines)):
        m = 0
        while m < n and k + m < len(file_lines) and file_lines[k + m] == want[m]:
            m += 1
        if m > best_len:
            best, best_len = k, m
    if best_len <= 0:
        detail = "its first line is not in the file: %r" % want[0]
    else:
        got = file_lines[best + best_len] if best + best_len < len(file_lines) \
            else "<end of file>"
        detail = ("block line %d differs from %s line %d:\n    block: %r\n"
                  "    file:  %r" % (best_len + 1, rel, best + best_len + 1,
                                     want[best_len], got))
    errors.append("%s: not a verbatim excerpt of %s (was the example "
                  "edited?); %s" % (block.where(), rel, detail))
    return errors


_runs = {}


def run(binary):
    """Run an example once (cached): (exit status, stdout) or an error."""
    if binary in _runs:
        return _runs[binary]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            p = subprocess.run([binary], cwd=tmp, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               timeout=RUN_TIMEOUT)
            res = (p.returncode, p.stdout.decode("utf-8", "replace"),
                   p.stderr.decode("utf-8", "replace"))
        except subprocess.TimeoutExpired:
            res = (None, "", "timed out after %d s" % RUN_TIMEOUT)
        except OSError as e:
            res = (None, "", str(e))
    _runs[binary] = res
    return res


def shown_output(block, name):
    lines = block.text.split("\n")
    errors = []
    while lines and lines[0].startswith("$ "):
        cmd = lines[0][2:].strip()
        if os.path.basename(cmd.split()[0]) != name:
            errors.append("%s: the command line %r does not run %s"
                          % (block.where(), lines[0], name))
        lines = lines[1:]
    return "\n".join(lines).rstrip("\n"), errors


def matches(mode, shown, got):
    got = got.rstrip("\n")
    if mode == "exact":
        return shown == got
    if mode == "unordered":
        return sorted(shown.split("\n")) == sorted(got.split("\n"))
    if mode == "numbers":
        return NUMBER.sub("#", shown) == NUMBER.sub("#", got)
    raise ValueError(mode)


def check_output(block, root, bindir):
    if len(block.args) != 2:
        return ["%s: 'output' wants an example name and a mode"
                % block.where()]
    name, mode = block.args
    if mode not in ("exact", "unordered", "numbers", "varies"):
        return ["%s: unknown mode %r" % (block.where(), mode)]
    if not os.path.exists(os.path.join(root, "examples", name + ".c")):
        return ["%s: there is no examples/%s.c" % (block.where(), name)]
    shown, errors = shown_output(block, name)
    if mode == "varies":
        return errors
    binary = os.path.abspath(os.path.join(bindir, name))
    if not os.access(binary, os.X_OK):
        return errors + ["%s: %s is not built (build the examples first)"
                         % (block.where(), binary)]
    for attempt in range(TRIES):
        status, out, err = run(binary)
        if status == 0 and matches(mode, shown, out):
            return errors
        _runs.pop(binary, None)
    if status != 0:
        return errors + ["%s: %s failed (status %s): %s"
                         % (block.where(), name, status, err.strip())]
    return errors + ["%s: output of %s (%s) differs from the block.\n"
                     "--- shown\n%s\n--- printed\n%s---"
                     % (block.where(), name, mode, shown, out)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True,
                    help="the source tree (holds examples/)")
    ap.add_argument("--bin", required=True,
                    help="the directory of the built examples")
    ap.add_argument("docs", nargs="+")
    a = ap.parse_args()

    errors = []
    per_doc = []
    for doc in a.docs:
        blocks, errs = parse(doc)
        errors += errs
        per_doc.append((doc, blocks))
        for b in blocks:
            if b.kind == "source":
                errors += check_source(b, a.root)
            elif b.kind == "output":
                errors += check_output(b, a.root, a.bin)
            elif b.kind != "none":
                errors.append("%s: unknown marker %r" % (b.where(), b.kind))

    # Translations show the same code and the same output.
    def shown(blocks):
        return [(b.kind, b.args, b.text) for b in blocks
                if b.kind in ("source", "output")]
    first_doc, first = per_doc[0]
    for doc, blocks in per_doc[1:]:
        x, y = shown(first), shown(blocks)
        for k in range(max(len(x), len(y))):
            if k >= len(x) or k >= len(y) or x[k] != y[k]:
                where = blocks[[i for i, b in enumerate(blocks)
                                if b.kind in ("source", "output")][k]].where() \
                    if k < len(y) else doc
                errors.append("%s: code/output block %d differs from %s's "
                              "(translations must show the same blocks)"
                              % (where, k + 1, first_doc))
                break

    nblocks = sum(len(b) for _, b in per_doc)
    if errors:
        for e in errors:
            print("FAIL " + e)
        print("%d problem(s) in %d blocks" % (len(errors), nblocks))
        return 1
    ran = ", ".join(sorted(os.path.basename(b) for b in _runs))
    print("ok: %d blocks in %d files; ran %s" % (nblocks, len(a.docs),
                                                  ran or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
