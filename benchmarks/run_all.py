"""Runs every benchmark and prints one table of their figures: each ratio with its
target and whether it is met, each with the median and range of its repeats.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only intake,screening]
                                           [--save after.jsonl] [--compare before.jsonl]

`--save` keeps the figures (JSON lines); `--compare` prints a saved run beside this one,
so that two versions of the engine can be compared figure by figure. `--table FILE`
prints the table of a saved run without running anything. Each benchmark runs in its own
process, one after the other; run this on a quiet machine, since every benchmark compares
figures taken in the same run but load still widens their ranges."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import describe  # noqa: E402

HERE = Path(__file__).resolve().parent

# name -> (arguments at full size, arguments with --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "intake": ([], ["--quick"]),
    "screening": ([], ["--quick"]),
    "assignment": ([], ["--quick"]),
    "bundles": ([], ["--quick"]),
    "delivery": ([], ["--quick"]),
    "status_api": ([], ["--quick"]),
    "deployed": (["served"], ["served", "--quick"]),
    "request_limit": ([], ["--quick"]),
    "commands": ([], ["--quick"]),
    "grants_day": ([], ["--quick"]),
}


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(names: list[str], quick: bool, results: Path) -> dict[str, tuple[int, float]]:
    outcomes: dict[str, tuple[int, float]] = {}
    for name in names:
        full, small = BENCHMARKS[name]
        command = [sys.executable, str(HERE / f"{name}.py"), *(small if quick else full)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, env={**os.environ, "SIP_BENCH_RESULTS": str(results)}, check=False).returncode
        outcomes[name] = (code, time.perf_counter() - started)
        print(f"== {name}: {'done' if code == 0 else f'FAILED (exit {code})'} in {outcomes[name][1]:.0f} s", flush=True)
    return outcomes


def table(figures: list[dict[str, Any]], before: list[dict[str, Any]] | None = None) -> str:
    """One row per figure: benchmark, figure, value, range, target, verdict (and the
    saved run's value and verdict beside it when comparing)."""
    earlier = {(f["benchmark"], f["name"]): f for f in before or []}
    header = ["benchmark", "figure", "value", "range", "target", "verdict"]
    if before is not None:
        header += ["before", "before verdict"]
    rows = [header]
    seen = set()
    for f in figures:
        key = (f["benchmark"], f["name"])
        seen.add(key)
        value, spread, target, met = describe(f)
        row = [f["benchmark"], f["name"], value, spread, target, met]
        if before is not None:
            old = earlier.get(key)
            row += [describe(old)[0], describe(old)[3]] if old else ["-", ""]
        rows.append(row)
    if before is not None:  # figures the saved run had and this one does not
        for key, old in earlier.items():
            if key not in seen:
                value, _, target, met = describe(old)
                rows.append([key[0], key[1], "-", "", target, "", value, met])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip(" |") for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (each benchmark's --quick)")
    parser.add_argument("--only", help="comma-separated benchmarks: " + ",".join(BENCHMARKS))
    parser.add_argument("--save", type=Path, help="keep this run's figures in FILE (JSON lines)")
    parser.add_argument("--compare", type=Path, help="print a saved run's figures beside this run's")
    parser.add_argument("--table", type=Path, help="print the table of a saved run and stop")
    args = parser.parse_args()
    before = load(args.compare) if args.compare else None
    if args.compare and not before:
        parser.error(f"--compare: no figures in {args.compare}")
    if args.table:
        figures = load(args.table)
        if not figures:
            parser.error(f"--table: no figures in {args.table}")
        print(table(figures, before))
        return
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"--only: no benchmark named {', '.join(unknown)} (there are: {', '.join(BENCHMARKS)})")
    results = args.save or Path(tempfile.mkstemp(prefix="sip-bench-", suffix=".jsonl")[1])
    if args.save and args.save.exists():
        args.save.unlink()
    outcomes = run(names, args.quick, results)
    figures = load(results)
    print()
    print(f"{len(figures)} figures, {'--quick sizes' if args.quick else 'full sizes'}, {os.cpu_count()} cores")
    print(table(figures, before))
    failed = [n for n, (code, _) in outcomes.items() if code != 0]
    unmet = [f for f in figures if f.get("met") is False]
    print(
        f"\n{sum(1 for f in figures if f.get('met'))} targets met, {len(unmet)} not met"
        + (f"; benchmarks that failed: {', '.join(failed)}" if failed else "")
    )
    if args.save:
        print(f"figures saved in {args.save}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
