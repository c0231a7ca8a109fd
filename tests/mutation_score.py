"""Mutation score per module from mutmut's results (`make mutate` prints it; docs in README).

Reads mutants/<module>.py.meta (written by `mutmut run`) and tests/mutation_equivalents.txt,
whose lines are `<mutant name>  # why it cannot be killed` (blank lines and `#` lines ignored).
Score = killed / (mutants - equivalents); killed counts timeouts and type-check kills, and a
mutant no selected test reaches counts as survived. `--min N` exits 1 below N % on a module.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.txt"
KILLED = {1, 3, 24, -24, 36, 37}  # failed test, pytest error, CPU limit, timeout, type check
SURVIVED = {0, 5, 33}  # tests passed, no test reaches it


def load_equivalents(path: Path = EQUIVALENTS) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path.name}: no reason given for {name.strip()}")
        out[name.strip()] = reason.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=0.0, help="fail below this score (%%)")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    args = parser.parse_args(argv)

    equivalents = load_equivalents()
    metas = sorted((ROOT / "mutants" / "monitor").rglob("*.py.meta"))
    if not metas:
        print("no mutmut results in mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    print(
        f"{'module':40} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} {'unrun':>5}"
        f" {'score':>7}"
    )
    failed = False
    seen_equivalents: set[str] = set()
    survivors: list[str] = []
    for meta in metas:
        codes: dict[str, int | None] = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
        if not codes:
            continue
        module = meta.relative_to(ROOT / "mutants").as_posix().removesuffix(".py.meta")
        tally: Counter[str] = Counter()
        for name, code in codes.items():
            if name in equivalents:
                seen_equivalents.add(name)
                tally["equiv"] += 1
                if code in KILLED:
                    print(f"note: {name} is listed as equivalent but was killed", file=sys.stderr)
            elif code is None:
                tally["unrun"] += 1
            elif code in KILLED:
                tally["killed"] += 1
            else:  # survived, no tests, or suspicious (mutmut's unknown exit codes)
                tally["survived"] += 1
                survivors.append(name)
        judged = tally["killed"] + tally["survived"]
        score = 100.0 * tally["killed"] / judged if judged else 100.0
        failed |= judged > 0 and score < args.min
        print(
            f"{module:40} {len(codes):7} {tally['killed']:6} {tally['equiv']:5}"
            f" {tally['survived']:8} {tally['unrun']:5} {score:6.1f}%"
        )
    for name in sorted(set(equivalents) - seen_equivalents):
        print(f"note: equivalent {name} is not a current mutant (code changed?)", file=sys.stderr)
    if args.survivors:
        print("\n".join(["", "surviving:", *sorted(survivors)]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
