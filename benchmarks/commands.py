"""Commands benchmark: how long a person waits at the terminal for the whole demo and for
a command that is refused, each run as they run it (`sip ...` in a process of its own,
Prefect's local server started by the command where it runs a flow).

    .venv/bin/python benchmarks/commands.py [--quick] [--repeats 3]

The demo runs on its own data folder and Prefect home, after one untimed run that
creates them (a warm install: Prefect's own database exists, the packages are compiled).
Each refused command is one a person could mistype: a round that does not exist, files
that are not there, a delivery limit of 0; each must say so before Prefect starts.

Targets (issue 13): the demo under 12 s on a warm install; a refused command under 2 s."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Stats, report_stats  # noqa: E402

BENCH = "commands"
SIP = Path(sys.executable).parent / "sip"
DEMO_TARGET_S = 12.0
REFUSED_TARGET_S = 2.0
REFUSED = {
    "sip screen with a round that does not exist": ["screen", "no-such-round"],
    "sip applications import with files that are not there": ["applications", "import", "sip-2018-r1", "/no/such"],
    "sip outbox deliver --limit 0": ["outbox", "deliver", "--limit", "0"],
}


def timed(arguments: list[str], env: dict[str, str], *, expect_ok: bool) -> float:
    started = time.perf_counter()
    out = subprocess.run([str(SIP), *arguments], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if (out.returncode == 0) != expect_ok:
        sys.exit(
            f"sip {' '.join(arguments)}: exit {out.returncode}, not as expected:\n"
            f"{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the same runs (they are short already)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats: at least 3")
    folder = Path(tempfile.mkdtemp(prefix="sip-bench-commands-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PREFECT_API_URL")}
    env.update(SIP_DATA_DIR=str(folder / "data"), PREFECT_HOME=str(folder / "prefect-home"))
    print(f"commands benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {args.repeats} repeats")
    try:
        timed(["demo", "--fresh"], env, expect_ok=True)  # the warm-up: a warm install has all of this
        demo = Stats(tuple(timed(["demo", "--fresh"], env, expect_ok=True) for _ in range(args.repeats)))
        report_stats(
            BENCH,
            "sip demo --fresh, whole round 1 (warm install, local Prefect server started by the command)",
            demo,
            "s",
            target=f"< {DEMO_TARGET_S:.0f} s",
            met=lambda s: s < DEMO_TARGET_S,
        )
        for label, arguments in REFUSED.items():
            refused = Stats(tuple(timed(arguments, env, expect_ok=False) for _ in range(args.repeats)))
            report_stats(
                BENCH,
                f"refused: {label}",
                refused,
                "s",
                target=f"< {REFUSED_TARGET_S:.0f} s",
                met=lambda s: s < REFUSED_TARGET_S,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
