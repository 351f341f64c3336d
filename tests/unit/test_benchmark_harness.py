"""The benchmarks' shared harness: medians and ranges of repeats, ratios taken run by
run, memory read from /proc for this process and its children, and the one table that
compares two saved runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from measure import Figure, Memory, Stats, children, ratio_stats, repeat, report  # noqa: E402
from run_all import table  # noqa: E402


def test_repeat_gives_the_median_and_range_of_every_run() -> None:
    values = iter([3.0, 1.0, 2.0])
    stats = repeat(lambda: next(values), times=3)
    assert (stats.median, stats.low, stats.high) == (2.0, 1.0, 3.0)
    with pytest.raises(ValueError):
        repeat(lambda: 1.0, times=0)


def test_a_ratio_is_taken_run_by_run() -> None:
    assert ratio_stats(Stats((2.0, 6.0, 3.0)), Stats((1.0, 2.0, 3.0))).values == (2.0, 3.0, 1.0)


def test_memory_counts_what_the_process_and_a_child_hold() -> None:
    with Memory(find={"child": children}) as mem:
        held = bytearray(64 * 1024 * 1024)
        held[::4096] = b"x" * len(held[::4096])  # touched, so resident
        subprocess.run(
            [
                sys.executable,
                "-c",
                "x = bytearray(48 * 1024 * 1024); x[::4096] = b'y' * len(x[::4096]); import time; time.sleep(0.4)",
            ],
            check=True,
        )
        del held
    assert mem.growth_mb["process"] >= 60
    assert mem.peak_mb["child"] >= 48


def test_a_reported_figure_is_recorded_for_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "figures.jsonl"
    monkeypatch.setenv("SIP_BENCH_RESULTS", str(results))
    report(Figure("intake", "SQLite / bare insert", 2.5, "x", (2.4, 2.7), "<= 3x", True))
    report(Figure("intake", "PostgreSQL / bare insert", 3.2, "x", None, "<= 3x", False))
    figures = [json.loads(line) for line in results.read_text().splitlines()]
    before = [{**figures[0], "value": 3.9, "met": False}]
    lines = table(figures, before).splitlines()
    assert "2.50x" in lines[2] and "2.40x to 2.70x" in lines[2] and "met" in lines[2] and "3.90x" in lines[2]
    assert "NOT met" in lines[3] and lines[3].rstrip().endswith("-")
