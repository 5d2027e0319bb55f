"""The C core's structure, read from the object files of the build (no server needed)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("extension", "bgworker")
DEFINED = set("TDBR")  # text, initialised data, uninitialised data, read-only data


def object_files() -> list[Path]:
    """The objects of the build next to their sources (an object without a source is ignored)."""
    return sorted(o for d in SOURCE_DIRS for o in (ROOT / d).glob("*.o")
                  if o.with_suffix(".c").exists())


def symbols(obj: Path) -> tuple[set[str], set[str]]:
    """The global symbols an object file defines and the ones it uses from elsewhere."""
    out = subprocess.run(["nm", str(obj)], check=True, capture_output=True, text=True).stdout
    defined: set[str] = set()
    used: set[str] = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] == "U":
            used.add(parts[-1])
        elif len(parts) == 3 and parts[1] in DEFINED:
            defined.add(parts[2])
    return defined, used


def test_no_two_c_files_call_each_other() -> None:
    """No pair of object files where each uses a symbol the other defines."""
    objs = object_files()
    assert objs, (f"no object files in {', '.join(str(ROOT / d) for d in SOURCE_DIRS)}:"
                  " build first (make PG_CONFIG=...)")
    stale = [o.relative_to(ROOT).as_posix() for o in objs
             if o.stat().st_mtime < o.with_suffix(".c").stat().st_mtime]
    assert stale == [], f"object files older than their sources: {stale}; build first"
    table = {o.relative_to(ROOT).as_posix(): symbols(o) for o in objs}
    pairs = []
    for (a, (a_def, a_use)), (b, (b_def, b_use)) in itertools.combinations(table.items(), 2):
        a_to_b = sorted(a_use & b_def)
        b_to_a = sorted(b_use & a_def)
        if a_to_b and b_to_a:
            pairs.append(f"{a} <-> {b}: {a} uses {', '.join(a_to_b)};"
                         f" {b} uses {', '.join(b_to_a)}")
    assert pairs == [], "C files that call each other:\n" + "\n".join(pairs)
