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

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import (
    KIB,
    MB,
    MIB,
    BenchError,
    Runner,
    Series,
    parse_args,
    progress,
    run_datasets,
    table,
)

from control_plane.registry import FileRow, dump_files, file_row_id, parse_files

DATA_DIR = "data"

OPENSSL_REFERENCE = 'find "$1" -type f -print0 | xargs -0 -P2 -n10 openssl dgst -sha256 > /dev/null'
SHA256SUM_REFERENCE = 'find "$1" -type f -print0 | xargs -0 -P2 -n1000 sha256sum > /dev/null'


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


def check(runner: Runner, root: Path, *flags: str) -> dict[str, object]:
    """Untimed ``integrity-check --json``; the report must be clean."""
    output = runner.output(
        [*runner.cpctl, "--root", str(root), "integrity-check", *flags, "--json"]
    )
    report: dict[str, object] = json.loads(output)
    return report


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
    progress(f"[{spec.key}] generating {spec.description} in {root / DATA_DIR}")
    started = time.perf_counter()
    data_bytes = spec.generate(random.Random(f"{seed}-{spec.key}"), root / DATA_DIR)
    files = register(root)
    progress(
        f"[{spec.key}] {files} files, {data_bytes / MB:.1f} MB generated and registered in {time.perf_counter() - started:.1f} s"
    )

    # Warm-up, untimed: both sides then read from the page cache, and the files are
    # older than the stat cache's racy window by the time --fast runs.
    report = check(runner, root)
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
            sample = runner.run(argv)
            series.samples.append(sample)
            progress(f"[{spec.key}] full #{index} {label}: {sample.seconds:.3f} s")

    fast: Series | None = None
    fast_cached: int | None = None
    if spec.fast_target_seconds is not None:
        check(runner, root)  # a full check writes the stat cache --fast trusts
        fast_report = check(runner, root, "--fast")
        fast_cached = int(str(fast_report["cached"]))
        fast = Series()
        for index in range(1, repeat + 1):
            sample = runner.run([*ours_argv, "--fast"])
            fast.samples.append(sample)
            progress(f"[{spec.key}] fast #{index} cpctl: {sample.seconds:.3f} s")
    return Outcome(spec, files, data_bytes, ours, reference, fast, fast_cached)


# ---------------------------------------------------------------------------- report


def report(outcomes: Sequence[Outcome], repeat: int, seed: int, workdir: Path) -> str:
    """The table: medians, ratio, target and verdict per measure."""
    header = f"cpctl integrity-check vs references; median of {repeat} interleaved runs; seed {seed}; {os.cpu_count()} CPUs; workdir {workdir}"
    rows = [("set", "measure", "cpctl", "reference", "ratio", "target", "result")]
    for outcome in outcomes:
        spec = outcome.spec
        ratio = outcome.ours.median_seconds / outcome.reference.median_seconds
        rows.append(
            (
                spec.key,
                "full check",
                f"{outcome.ours.median_seconds:.3f} s",
                f"{outcome.reference.median_seconds:.3f} s",
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
                    f"{outcome.fast.median_seconds:.3f} s",
                    "",
                    "",
                    f"< {spec.fast_target_seconds:.1f} s",
                    "PASS" if outcome.fast.median_seconds < spec.fast_target_seconds else "MISS",
                )
            )
    lines = table(header, rows)
    lines.append("")
    for outcome in outcomes:
        spec = outcome.spec
        lines.append(
            f"{spec.key}: {spec.description}; {outcome.files} files, {outcome.data_bytes / MB:.1f} MB; reference: {spec.reference_label}"
        )
        lines.append(f"   cpctl full runs (s): {outcome.ours.runs()}")
        lines.append(f"   reference runs (s):  {outcome.reference.runs()}")
        if outcome.fast is not None:
            lines.append(
                f"   cpctl --fast runs (s): {outcome.fast.runs()}; {outcome.fast_cached} of {outcome.files} files trusted from the stat cache"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(
        argv,
        "Compare cpctl integrity-check with openssl and sha256sum on generated data.",
        list(SPECS),
        "run one dataset only (S is S': 100,000 small files)",
    )
    return run_datasets(
        "bench_integrity",
        args,
        keys=[args.only] if args.only else ["L", "S"],
        tools=("find", "xargs", "openssl", "sha256sum", "bash"),
        measure=lambda key, base, runner: measure(SPECS[key], base, runner, args.repeat, args.seed),
        report=lambda outcomes, workdir: report(outcomes, args.repeat, args.seed, workdir),
    )


if __name__ == "__main__":
    sys.exit(main())
