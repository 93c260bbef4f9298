"""What the dataset benchmarks share: timed child processes, series, the table, the main loop.

Each benchmark (``bench_archive.py``, ``bench_integrity.py``) supplies its datasets, a
``measure`` function per dataset and a ``report``; this module runs them in a scratch
work directory, one child process at a time, and cleans up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

KIB = 1024
MIB = 1024 * KIB
MB = 1_000_000

OutcomeT = TypeVar("OutcomeT")


class BenchError(Exception):
    """A command the benchmark depends on failed; the message says which and why."""


@dataclass(frozen=True)
class Sample:
    """One timed child process: wall seconds (start-up included) and its peak RSS."""

    seconds: float
    max_rss_bytes: int


@dataclass
class Series:
    """The samples of one side of one measure."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(sample.seconds for sample in self.samples)

    @property
    def max_rss_mb(self) -> float:
        return max(sample.max_rss_bytes for sample in self.samples) / MB

    def runs(self) -> str:
        return ", ".join(f"{sample.seconds:.3f}" for sample in self.samples)


def tail(text: str, lines: int = 5) -> str:
    """The last non-empty lines of a command's output, on one line."""
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verdict(value: float, target: float, *, strict: bool = False) -> str:
    ok = value < target if strict else value <= target
    return "PASS" if ok else "MISS"


class Runner:
    """Runs child processes one at a time, timing each and reading its own rusage."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._count = 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
        self.cpctl = [sys.executable, "-m", "control_plane"]

    def run(self, argv: Sequence[str], *, cwd: Path | None = None) -> Sample:
        """Run ``argv`` to completion; raise BenchError if it fails."""
        self._count += 1
        err_path = self._logs / f"{self._count:04d}.stderr"
        # Write-back of an earlier run's dirty pages must not land in this run's timing.
        os.sync()
        with err_path.open("wb") as err:
            start = time.perf_counter()
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            # wait4 gives this child's own peak RSS; RUSAGE_CHILDREN only keeps a maximum.
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise BenchError(
                f"{' '.join(argv)} (in {cwd}) exited {process.returncode}: "
                f"{tail(err_path.read_text(errors='replace'))}"
            )
        return Sample(elapsed, usage.ru_maxrss * KIB)

    def output(self, argv: Sequence[str], *, cwd: Path | None = None) -> str:
        """Untimed: run ``argv`` and return its stdout; raise BenchError if it fails."""
        done = subprocess.run(
            list(argv), cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise BenchError(
                f"{' '.join(argv)} exited {done.returncode}: {tail(done.stderr + done.stdout)}"
            )
        return done.stdout


def table(header: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """``header``, a blank line, then ``rows`` in aligned columns (the first row is the head)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [header, ""]
    for number, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def parse_args(
    argv: Sequence[str] | None, description: str, datasets: Sequence[str], only_help: str
) -> argparse.Namespace:
    """The options every dataset benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", choices=sorted(datasets), help=only_help)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument(
        "--workdir", type=Path, help="scratch directory (default: a new one under /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated data and outputs")
    parser.add_argument("--seed", type=int, default=1, help="data generator seed (default 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def run_datasets(
    name: str,
    args: argparse.Namespace,
    *,
    keys: Sequence[str],
    tools: Sequence[str],
    measure: Callable[[str, Path, Runner], OutcomeT],
    report: Callable[[Sequence[OutcomeT], Path], str],
) -> int:
    """Measure each dataset in ``keys`` under a work directory, print the report, clean up.

    Returns the exit status: 0 whatever the figures, 1 when a command failed, 2 on misuse.
    """
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"{name}: error: {tool} is not on PATH", file=sys.stderr)
            return 2
    if args.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix=f"cpctl-{name}-", dir="/tmp"))
        created = [workdir]
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        taken = [key for key in (*keys, "logs") if (workdir / key).exists()]
        if taken:
            print(f"{name}: error: {workdir} already holds {', '.join(taken)}", file=sys.stderr)
            return 2
        created = [workdir / key for key in (*keys, "logs")]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    runner = Runner(logs)
    status = 0
    try:
        outcomes = []
        for key in keys:
            base = workdir / key
            base.mkdir()
            outcomes.append(measure(key, base, runner))
        print(report(outcomes, workdir))
    except (BenchError, subprocess.CalledProcessError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        status = 1
    finally:
        # Deleting only here keeps every timed run on a file system with no fresh deletions.
        if args.keep:
            progress(f"kept {workdir}")
        else:
            for path in created:
                shutil.rmtree(path, ignore_errors=True)
    return status
