"""What every benchmark here measures with: repeats with their median and spread, memory
read from /proc (the measured process and any other, e.g. the Prefect server), and one
line per figure with its target and whether it is met.

When the environment variable SIP_BENCH_RESULTS names a file, each reported figure is
also appended to it as a JSON line; `benchmarks/run_all.py` reads those into one table.

Memory is the resident set size (VmRSS) sampled every 20 ms in a thread, and the kernel's
own high-water mark (VmHWM), reset at the start of the measurement where the kernel
allows it (`/proc/PID/clear_refs`), so that a child process does not report the peak it
inherited from its parent (which is what `ru_maxrss` does)."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True)
class Stats:
    """The values of a repeated measurement, with their median and range."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        return f"{self.median:.2f} (range {self.low:.2f}-{self.high:.2f}, {len(self.values)} runs)"


def repeat(fn: Callable[[], float], times: int = 3) -> Stats:
    """Runs `fn` `times` times; `fn` returns the figure of one run (e.g. its seconds)."""
    if times < 1:
        raise ValueError("times must be at least 1")
    return Stats(tuple(float(fn()) for _ in range(times)))


def ratio_stats(numerator: Stats, denominator: Stats) -> Stats:
    """The ratios of runs taken side by side (run i over run i): the spread of a ratio
    says how much the machine's load moved it."""
    return Stats(tuple(a / b for a, b in zip(numerator.values, denominator.values, strict=True)))


def rss_mb(pid: int | str = "self") -> float:
    """The resident set size of a process now, in MB (0 if it has ended)."""
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int | str, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    return 0.0


def _reset_peak(pid: int | str) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def children(pid: int | str = "self") -> list[int]:
    """The descendants of a process (from /proc/*/stat), nearest first."""
    me = os.getpid() if pid == "self" else int(pid)
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [me]
    while frontier:
        nxt = [p for p, parent in parents.items() if parent in frontier]
        found.extend(nxt)
        frontier = nxt
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def prefect_server_pids(pid: int | str = "self") -> list[int]:
    """The Prefect server processes started by a process (its ephemeral server)."""
    return [p for p in children(pid) if "prefect" in command_line(p) and "server" in command_line(p)]


@dataclass
class Memory:
    """Samples the memory of this process and of `pids` (label -> pid) while the block
    runs. `find` (label -> function returning pids) names processes that appear later,
    e.g. a Prefect server the measured code starts: they are looked up on each sample.

        with Memory(find={"prefect server": prefect_server_pids}) as mem:
            ...
        mem.peak_mb["process"], mem.growth_mb["process"], mem.peak_mb["prefect server"]
    """

    pids: dict[str, int] = field(default_factory=dict)
    find: dict[str, Callable[[], list[int]]] = field(default_factory=dict)
    interval: float = 0.02
    baseline_mb: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _targets(self) -> dict[str, list[int]]:
        targets: dict[str, list[int]] = {"process": [os.getpid()]}
        targets.update({label: [pid] for label, pid in self.pids.items()})
        for label, lookup in self.find.items():
            targets[label] = lookup()
        return targets

    def _sample(self) -> None:
        for label, pids in self._targets().items():
            now = sum(rss_mb(p) for p in pids)
            self.peak_mb[label] = max(self.peak_mb.get(label, 0.0), now)
            self.baseline_mb.setdefault(label, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Memory:
        for pids in self._targets().values():
            for p in pids:
                _reset_peak(p)
        self._sample()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        hwm = _status_mb("self", "VmHWM")  # the kernel's peak since the reset: catches spikes between samples
        self.peak_mb["process"] = max(self.peak_mb["process"], hwm)

    @property
    def growth_mb(self) -> dict[str, float]:
        """Peak over the figure at the start, by label (a process found later starts at 0)."""
        return {label: peak - self.baseline_mb.get(label, 0.0) for label, peak in self.peak_mb.items()}


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark: a ratio against a baseline with its target, or an
    absolute value (seconds, MB, per second) with target=None."""

    benchmark: str
    name: str
    value: float
    unit: str
    spread: tuple[float, float] | None = None
    target: str | None = None
    met: bool | None = None
    note: str = ""


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT met")


def _number(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if float(value).is_integer():
        return f"{value:,.0f} {unit}".rstrip()
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def describe(figure: Figure | dict[str, Any]) -> tuple[str, str, str, str]:
    """(value, spread, target, verdict) as printed."""
    if isinstance(figure, Figure):
        f = figure
    else:
        known = {k: v for k, v in figure.items() if k in Figure.__dataclass_fields__}
        f = Figure(**{**known, "spread": _pair(figure.get("spread"))})
    spread = f"{_number(f.spread[0], f.unit)} to {_number(f.spread[1], f.unit)}" if f.spread else ""
    return _number(f.value, f.unit), spread, f.target or "", verdict(f.met)


def _pair(value: Any) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


def report(figure: Figure) -> None:
    """Prints the figure on one line and, with SIP_BENCH_RESULTS set, records it."""
    value, spread, target, met = describe(figure)
    parts = [f"  {figure.name}: {value}"]
    if spread:
        parts.append(f"(range {spread})")
    if target:
        parts.append(f"target {target}: {met}")
    if figure.note:
        parts.append(f"[{figure.note}]")
    print(" ".join(parts), flush=True)
    results = os.environ.get("SIP_BENCH_RESULTS")
    if results:
        with open(results, "a", encoding="utf-8") as out:
            out.write(json.dumps({**asdict(figure), "recorded": time.time()}) + "\n")


def report_stats(
    benchmark: str,
    name: str,
    stats: Stats,
    unit: str,
    *,
    target: str | None = None,
    met: Callable[[float], bool] | None = None,
    note: str = "",
) -> None:
    """Reports the median of repeated runs with their range; `met` judges the median."""
    report(
        Figure(
            benchmark=benchmark,
            name=name,
            value=stats.median,
            unit=unit,
            spread=stats.spread if len(stats.values) > 1 else None,
            target=target,
            met=met(stats.median) if met else None,
            note=note,
        )
    )
