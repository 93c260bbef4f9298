"""integrity-check speed against openssl and sha256sum on the same files, and --fast on an unchanged tree.

One run generates each dataset inside a scratch root, registers every file by writing
control_plane_registry.csv directly (hashing 100,000 files through hash-update would take
hours), warms the page cache, then times, interleaved, ``cpctl integrity-check --json``
(a full check in a new process: start-up, registry parsing, walk, hashing, Merkle root) against

    L:  find DIR -type f -print0 | xargs -0 -P2 -n10 openssl dgst -sha256
    S': find DIR -type f -print0 | xargs -0 -P2 -n1000 sha256sum

and, on S', ``cpctl integrity-check --fast --json`` after a full check. It prints the
medians, ratios, targets and PASS/MISS. It is a report, not a test: it exits 0 whatever
the figures, and non-zero only when a command fails or a check is not clean.

    python benchmarks/bench_integrity.py [--only L|S] [--repeat N] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.registry import FileRow, dump_files, file_row_id, parse_files

KIB = 1024
MIB = 1024 * KIB
MB = 1_000_000
DATA_DIR = "data"

OPENSSL_REFERENCE = 'find "$1" -type f -print0 | xargs -0 -P2 -n10 openssl dgst -sha256 > /dev/null'
SHA256SUM_REFERENCE = 'find "$1" -type f -print0 | xargs -0 -P2 -n1000 sha256sum > /dev/null'


class BenchError(Exception):
    """A command the benchmark depends on failed; the message says which and why."""


@dataclass(frozen=True)
class Spec:
    """A dataset, its reference command and its targets."""

    key: str
    description: str
    reference_label: str
    reference_script: str
    ratio_target: float
    fast_target_seconds: float | None
    generate: Callable[[random.Random, Path], int]


@dataclass
class Series:
    """Wall seconds of one side of one measure, start-up included."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass(frozen=True)
class Outcome:
    """Everything measured on one dataset."""

    spec: Spec
    files: int
    data_bytes: int
    ours: Series
    reference: Series
    fast: Series | None
    fast_cached: int | None


# ---------------------------------------------------------------------------- data


def generate_large(rng: random.Random, target: Path) -> int:
    """20 files of 25 MiB of random bytes; returns the byte count."""
    target.mkdir(parents=True)
    for index in range(20):
        (target / f"blob{index:02d}.bin").write_bytes(rng.randbytes(25 * MIB))
    return 20 * 25 * MIB


def generate_small(rng: random.Random, target: Path) -> int:
    """100,000 files of 1-8 KiB in 1,000 folders; returns the byte count."""
    pool = rng.randbytes(8 * KIB * 64)
    total = 0
    for folder in range(1000):
        directory = target / f"dir{folder:04d}"
        directory.mkdir(parents=True)
        for index in range(100):
            size = rng.randint(1 * KIB, 8 * KIB)
            start = rng.randrange(len(pool) - size)
            # A per-file prefix keeps every file distinct without generating 450 MB of randomness.
            data = f"{folder}/{index}\n".encode() + pool[start : start + size]
            (directory / f"file{index:03d}.txt").write_bytes(data[:size])
            total += size
    return total


SPECS = {
    "L": Spec(
        "L",
        "20 files of 25 MiB",
        "xargs -P2 -n10 openssl dgst -sha256",
        OPENSSL_REFERENCE,
        1.5,
        None,
        generate_large,
    ),
    "S": Spec(
        "S'",
        "100,000 files of 1-8 KiB in 1,000 folders",
        "xargs -P2 -n1000 sha256sum",
        SHA256SUM_REFERENCE,
        1.5,
        2.0,
        generate_small,
    ),
}


def register(root: Path) -> int:
    """Add a control-registry row for every file under ``root/data``; return the count."""
    registry = root / "registries" / "control_plane_registry.csv"
    rows = list(parse_files(registry.read_bytes()).require_clean())
    data = root / DATA_DIR
    for directory, _dirs, names in os.walk(data):
        for name in names:
            path = Path(directory) / name
            rel = path.relative_to(root).as_posix()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            rows.append(FileRow(file_row_id(rel), rel, digest, "manual", "file"))
    registry.write_bytes(dump_files(rows))
    return len(rows) - 1


# ---------------------------------------------------------------------------- processes


class Runner:
    """Runs child processes one at a time and times each."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._count = 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
        self.cpctl = [sys.executable, "-m", "control_plane"]

    def run(self, argv: Sequence[str]) -> float:
        """Run ``argv`` to completion; wall seconds; raise BenchError if it fails."""
        self._count += 1
        err_path = self._logs / f"{self._count:04d}.stderr"
        os.sync()  # earlier writes must not be flushed inside this run's timing
        with err_path.open("wb") as err:
            start = time.perf_counter()
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
                check=False,
            )
            elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise BenchError(
                f"{' '.join(argv)} exited {done.returncode}: {err_path.read_text(errors='replace')[-500:]}"
            )
        return elapsed

    def check(self, root: Path, *flags: str) -> dict[str, object]:
        """Untimed ``integrity-check --json``; the report must be clean."""
        done = subprocess.run(
            [*self.cpctl, "--root", str(root), "integrity-check", *flags, "--json"],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(
                f"integrity-check {' '.join(flags)} on {root} exited {done.returncode}: {done.stdout[-800:]}{done.stderr[-400:]}"
            )
        report: dict[str, object] = json.loads(done.stdout)
        return report


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- measures


def measure(spec: Spec, base: Path, runner: Runner, repeat: int, seed: int) -> Outcome:
    """Generate and register one dataset under ``base``, then time both sides."""
    root = base / "root"
    subprocess.run(
        [*runner.cpctl, "--root", str(root), "init"],
        capture_output=True,
        env=runner.env,
        check=True,
    )
    _progress(f"[{spec.key}] generating {spec.description} in {root / DATA_DIR}")
    started = time.perf_counter()
    data_bytes = spec.generate(random.Random(f"{seed}-{spec.key}"), root / DATA_DIR)
    files = register(root)
    _progress(
        f"[{spec.key}] {files} files, {data_bytes / MB:.1f} MB generated and registered in {time.perf_counter() - started:.1f} s"
    )

    # Warm-up, untimed: both sides then read from the page cache, and the files are
    # older than the stat cache's racy window by the time --fast runs.
    report = runner.check(root)
    if report["checked"] != files or report["ok"] is not True:
        raise BenchError(f"warm-up check saw {report['checked']} files, expected {files}")
    reference_argv = [
        "bash",
        "-o",
        "pipefail",
        "-c",
        spec.reference_script,
        "bench",
        str(root / DATA_DIR),
    ]
    runner.run(reference_argv)

    ours, reference = Series(), Series()
    ours_argv = [*runner.cpctl, "--root", str(root), "integrity-check", "--json"]
    for index in range(1, repeat + 1):
        order = [("cpctl", ours_argv, ours), ("reference", reference_argv, reference)]
        if index % 2 == 0:
            order.reverse()
        for label, argv, series in order:
            seconds = runner.run(argv)
            series.samples.append(seconds)
            _progress(f"[{spec.key}] full #{index} {label}: {seconds:.3f} s")

    fast: Series | None = None
    fast_cached: int | None = None
    if spec.fast_target_seconds is not None:
        runner.check(root)  # a full check writes the stat cache --fast trusts
        fast_report = runner.check(root, "--fast")
        fast_cached = int(str(fast_report["cached"]))
        fast = Series()
        for index in range(1, repeat + 1):
            seconds = runner.run([*ours_argv, "--fast"])
            fast.samples.append(seconds)
            _progress(f"[{spec.key}] fast #{index} cpctl: {seconds:.3f} s")
    return Outcome(spec, files, data_bytes, ours, reference, fast, fast_cached)


# ---------------------------------------------------------------------------- report


def report(outcomes: Sequence[Outcome], repeat: int, seed: int, workdir: Path) -> str:
    """The table: medians, ratio, target and verdict per measure."""
    header = f"cpctl integrity-check vs references; median of {repeat} interleaved runs; seed {seed}; {os.cpu_count()} CPUs; workdir {workdir}"
    rows = [("set", "measure", "cpctl", "reference", "ratio", "target", "result")]
    for outcome in outcomes:
        spec = outcome.spec
        ratio = outcome.ours.median / outcome.reference.median
        rows.append(
            (
                spec.key,
                "full check",
                f"{outcome.ours.median:.3f} s",
                f"{outcome.reference.median:.3f} s",
                f"{ratio:.2f}x",
                f"<= {spec.ratio_target:.1f}x",
                "PASS" if ratio <= spec.ratio_target else "MISS",
            )
        )
        if outcome.fast is not None and spec.fast_target_seconds is not None:
            rows.append(
                (
                    spec.key,
                    "--fast, unchanged",
                    f"{outcome.fast.median:.3f} s",
                    "",
                    "",
                    f"< {spec.fast_target_seconds:.1f} s",
                    "PASS" if outcome.fast.median < spec.fast_target_seconds else "MISS",
                )
            )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [header, ""]
    for number, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append("")
    for outcome in outcomes:
        spec = outcome.spec
        lines.append(
            f"{spec.key}: {spec.description}; {outcome.files} files, {outcome.data_bytes / MB:.1f} MB; reference: {spec.reference_label}"
        )
        lines.append(
            f"   cpctl full runs (s): {', '.join(f'{s:.3f}' for s in outcome.ours.samples)}"
        )
        lines.append(
            f"   reference runs (s):  {', '.join(f'{s:.3f}' for s in outcome.reference.samples)}"
        )
        if outcome.fast is not None:
            lines.append(
                f"   cpctl --fast runs (s): {', '.join(f'{s:.3f}' for s in outcome.fast.samples)}; {outcome.fast_cached} of {outcome.files} files trusted from the stat cache"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare cpctl integrity-check with openssl and sha256sum on generated data."
    )
    parser.add_argument(
        "--only", choices=sorted(SPECS), help="run one dataset only (S is S': 100,000 small files)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument(
        "--workdir", type=Path, help="scratch directory (default: a new one under /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--seed", type=int, default=1, help="data generator seed (default 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("find", "xargs", "openssl", "sha256sum", "bash"):
        if shutil.which(tool) is None:
            print(f"bench_integrity: error: {tool} is not on PATH", file=sys.stderr)
            return 2
    keys = [args.only] if args.only else ["L", "S"]
    if args.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="cpctl-bench-integrity-", dir="/tmp"))
        created = [workdir]
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        taken = [key for key in (*keys, "logs") if (workdir / key).exists()]
        if taken:
            print(
                f"bench_integrity: error: {workdir} already holds {', '.join(taken)}",
                file=sys.stderr,
            )
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
            outcomes.append(measure(SPECS[key], base, runner, args.repeat, args.seed))
        print(report(outcomes, args.repeat, args.seed, workdir))
    except (BenchError, subprocess.CalledProcessError) as error:
        print(f"bench_integrity: error: {error}", file=sys.stderr)
        status = 1
    finally:
        if args.keep:
            _progress(f"kept {workdir}")
        else:
            for path in created:
                shutil.rmtree(path, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
