#!/usr/bin/env python3
"""Structural rules `scripts/test.sh` enforces, over the sources (standard library only):

1. Time comes through the clock port: no `Instant::now`, `SystemTime::now`,
   `OffsetDateTime::now_*` or `thread::sleep` in ferry-core outside its clock adapter
   (`crates/ferry-core/src/clock.rs`).
2. No import circles: within each crate, no two top-level modules (`promote`, `rollback`, …; a
   module's files count as one) name each other through `crate::` paths.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
AMBIENT = re.compile(r"\b(Instant::now|SystemTime::now|OffsetDateTime::now_\w+|thread::sleep)\b")


def code_lines(path):
    """The lines of a file without `//` comments (doc comments included) or test modules."""
    out = []
    in_tests = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"\s*#\[cfg\(test\)\]", line):
            in_tests = True  # unit tests sit at the end of a file
        if in_tests:
            break
        out.append((n, re.sub(r"//.*", "", line)))
    return out


def ambient_time():
    core = ROOT / "crates/ferry-core/src"
    bad = []
    for f in sorted(core.rglob("*.rs")):
        if f == core / "clock.rs":
            continue
        for n, line in code_lines(f):
            if AMBIENT.search(line):
                bad.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    return bad


def top_module(src, f):
    rel = f.relative_to(src).with_suffix("")
    parts = rel.parts
    if parts[0] in ("lib", "main"):
        return None
    return parts[0]


def referenced(text):
    """Top-level modules named by `crate::` paths, including grouped `use crate::{a, b::c}`."""
    names = set()
    for m in re.finditer(r"\bcrate::", text):
        rest = text[m.end():]
        if rest.startswith("{"):
            depth, item, i = 0, "", 0
            for i, ch in enumerate(rest):
                if ch == "{":
                    depth += 1
                    if depth == 1:
                        continue
                if ch == "}":
                    depth -= 1
                    if depth == 0:
                        break
                if depth == 1 and ch == ",":
                    names.add(item.strip().split("::")[0])
                    item = ""
                elif depth >= 1:
                    item += ch
            names.add(item.strip().split("::")[0])
        else:
            ident = re.match(r"[A-Za-z_]\w*", rest)
            if ident:
                names.add(ident.group(0))
    return {n for n in names if n}


def circles():
    found = []
    for src in sorted(ROOT.glob("crates/*/src")) + [ROOT / "bench/src"]:
        files = sorted(src.rglob("*.rs"))
        modules = {top_module(src, f) for f in files} - {None}
        edges = {m: set() for m in modules}
        for f in files:
            m = top_module(src, f)
            if m is None:
                continue
            text = "\n".join(line for _, line in code_lines(f))
            edges[m] |= (referenced(text) & modules) - {m}
        for a in sorted(modules):
            for b in sorted(edges[a]):
                if a < b and a in edges[b]:
                    found.append(f"{src.relative_to(ROOT)}: modules `{a}` and `{b}` import each other")
    return found


def main():
    failed = False
    for problem in ambient_time():
        print(f"ambient time outside the clock port: {problem}", file=sys.stderr)
        failed = True
    if failed:
        print("hint: take time from `Services::clock` (`ports::Clock`: now, monotonic, sleep, wait)", file=sys.stderr)
    found = circles()
    for problem in found:
        print(f"import circle: {problem}", file=sys.stderr)
    if found:
        print("hint: move what both need into one of them, or into a module both may import", file=sys.stderr)
    sys.exit(1 if failed or found else 0)


if __name__ == "__main__":
    main()
