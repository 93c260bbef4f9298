"""Pack and install speed and memory of cpctl against GNU tar and sha256sum, on the same data.

One run measures both sides on the same generated datasets, interleaving ours and the
reference, and prints the median seconds, the ratio ours / reference, the target and
PASS or MISS. It is a report, not a test: it exits 0 whatever the ratios, and non-zero
only when a command fails. See benchmarks/README.md.

    python benchmarks/bench_archive.py [--only S|L] [--repeat N] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
MB = 1_000_000

DATASET_DIR = "dataset"
RSS_TARGET_MB = 150.0

# The reference commands, exactly as a careful admin would type them.
TAR_PACK = [
    "tar",
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "-czf",
]
REFERENCE_INSTALL = (
    'tar xzf "$1" -C "$2" && find "$2" -type f -print0 | xargs -0 sha256sum > /dev/null'
)


class BenchError(Exception):
    """A command the benchmark depends on failed; the message says which and why."""


@dataclass(frozen=True)
class Spec:
    """A dataset and the targets that apply to it."""

    key: str
    description: str
    pack_target: float
    install_target: float
    generate: Callable[[random.Random, Path], int]


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


@dataclass(frozen=True)
class Outcome:
    """Everything measured on one dataset."""

    spec: Spec
    files: int
    data_bytes: int
    ours_archive_bytes: int
    tar_archive_bytes: int
    pack_ours: Series
    pack_ref: Series
    install_ours: Series
    install_ref: Series


# ---------------------------------------------------------------------------- data


class TextSource:
    """Word-like text with a Zipf-ish word frequency, so it compresses like prose or code."""

    def __init__(self, rng: random.Random, words: int = 4000) -> None:
        vocabulary: set[str] = set()
        while len(vocabulary) < words:
            length = rng.randint(2, 10)
            vocabulary.add("".join(rng.choices(string.ascii_lowercase, k=length)))
        ordered = sorted(vocabulary)  # set order depends on hash seeds; sort for determinism
        rng.shuffle(ordered)
        tokens: list[str] = []
        weights: list[float] = []
        for rank, word in enumerate(ordered, start=1):
            # Separators are part of the tokens so one choices() call makes a whole text.
            tokens.extend((word + " ", word + ",", word + ".\n"))
            weight = 1.0 / rank
            weights.extend((weight * 0.85, weight * 0.05, weight * 0.10))
        self._tokens = tokens
        self._cumulative = list(itertools.accumulate(weights))
        total = self._cumulative[-1]
        self._mean_length = sum(len(t) * w for t, w in zip(tokens, weights, strict=True)) / total

    def text(self, rng: random.Random, size: int) -> bytes:
        """Exactly ``size`` bytes of text."""
        parts: list[str] = []
        produced = 0
        while produced < size:
            count = int((size - produced) / self._mean_length * 1.02) + 16
            chunk = "".join(rng.choices(self._tokens, cum_weights=self._cumulative, k=count))
            parts.append(chunk)
            produced += len(chunk)
        return "".join(parts).encode("ascii")[:size]


def generate_small(rng: random.Random, target: Path) -> int:
    """10,000 text files of 1-8 KiB in 100 folders; returns the byte count."""
    source = TextSource(rng)
    total = 0
    for folder in range(100):
        directory = target / f"dir{folder:03d}"
        directory.mkdir(parents=True)
        for index in range(100):
            size = rng.randint(1 * KIB, 8 * KIB)
            (directory / f"file{index:03d}.txt").write_bytes(source.text(rng, size))
            total += size
    return total


def generate_large(rng: random.Random, target: Path) -> int:
    """20 files of 25 MiB: ten of random bytes, ten of text; returns the byte count."""
    source = TextSource(rng)
    target.mkdir(parents=True)
    size = 25 * MIB
    # Written in 1 MiB chunks: a child's peak RSS starts from this process's RSS at fork,
    # so the harness must stay small for the RSS column to mean anything.
    for index in range(20):
        name = f"random{index:02d}.bin" if index % 2 == 0 else f"text{index:02d}.txt"
        with (target / name).open("wb") as handle:
            for _ in range(size // MIB):
                chunk = rng.randbytes(MIB) if index % 2 == 0 else source.text(rng, MIB)
                handle.write(chunk)
    return 20 * size


SPECS = {
    "S": Spec("S", "10,000 files of 1-8 KiB text in 100 folders", 1.3, 2.0, generate_small),
    "L": Spec("L", "20 files of 25 MiB, half random, half text", 0.9, 1.0, generate_large),
}


# ---------------------------------------------------------------------------- processes


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
                f"{_tail(err_path.read_text(errors='replace'))}"
            )
        return Sample(elapsed, usage.ru_maxrss * KIB)

    def output(self, argv: Sequence[str], *, cwd: Path | None = None) -> str:
        """Untimed: run ``argv`` and return its stdout; raise BenchError if it fails."""
        done = subprocess.run(
            list(argv), cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise BenchError(
                f"{' '.join(argv)} exited {done.returncode}: {_tail(done.stderr + done.stdout)}"
            )
        return done.stdout


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _link_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=os.link)


def _copy_root(source: Path, target: Path) -> None:
    """Copy a packed root without its sources; archives are hard-linked, the rest copied.

    The ledger is appended in place, so it must be a copy, never a link.
    """

    def copy(src: str, dst: str) -> object:
        if src.endswith(".tar.gz"):
            os.link(src, dst)
            return dst
        return shutil.copy2(src, dst)

    shutil.copytree(
        source,
        target,
        copy_function=copy,
        ignore=lambda directory, _: [DATASET_DIR] if Path(directory) == source else [],
    )


def _count_files(directory: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))


# ---------------------------------------------------------------------------- measures


def measure(spec: Spec, base: Path, runner: Runner, repeat: int, seed: int) -> Outcome:
    """Generate one dataset under ``base`` and time pack and install on both sides."""
    package_id = f"PKG-BENCH-{spec.key}"
    source = base / "source" / DATASET_DIR
    _progress(f"[{spec.key}] generating {spec.description} in {source}")
    started = time.perf_counter()
    data_bytes = spec.generate(random.Random(f"{seed}-{spec.key}"), source)
    files = _count_files(source)
    _progress(
        f"[{spec.key}] {files} files, {data_bytes / MB:.1f} MB in {time.perf_counter() - started:.1f} s"
    )

    pack_ours, pack_ref = Series(), Series()
    pack_roots: list[Path] = []
    tar_archives: list[Path] = []
    for index in range(1, repeat + 1):
        root = base / f"pack-{index}"
        runner.output([*runner.cpctl, "--root", str(root), "init"])
        _link_tree(source, root / DATASET_DIR)
        tar_out = base / f"tar-{index}.tar.gz"

        def ours(root: Path = root) -> Sample:
            return runner.run(
                [
                    *runner.cpctl,
                    *("--root", str(root), "pack", "--src", DATASET_DIR),
                    *("--id", package_id, "--version", "1.0.0"),
                ],
                cwd=root,
            )

        def reference(root: Path = root, tar_out: Path = tar_out) -> Sample:
            return runner.run([*TAR_PACK, str(tar_out), DATASET_DIR], cwd=root)

        _interleave(
            index=index,
            key=spec.key,
            name="pack",
            sides=((ours, pack_ours), (reference, pack_ref)),
        )
        pack_roots.append(root)
        tar_archives.append(tar_out)

    archive = pack_roots[0] / "packages_store" / f"{DATASET_DIR}.tar.gz"
    sidecars = {
        (r / "packages_store" / f"{DATASET_DIR}.tar.gz.sha256").read_text() for r in pack_roots
    }
    if len(sidecars) != 1:
        raise BenchError(
            f"cpctl pack gave different archives for the same data: {sorted(sidecars)}"
        )

    install_ours, install_ref = Series(), Series()
    for index in range(1, repeat + 1):
        root = base / f"install-{index}"
        _copy_root(pack_roots[0], root)
        extract_dir = base / f"extract-{index}"
        extract_dir.mkdir()

        def ours(root: Path = root) -> Sample:
            return runner.run([*runner.cpctl, "--root", str(root), "install", "--id", package_id])

        def reference(extract_dir: Path = extract_dir) -> Sample:
            return runner.run(
                [
                    "bash",
                    "-o",
                    "pipefail",
                    "-c",
                    REFERENCE_INSTALL,
                    "bench",
                    str(archive),
                    str(extract_dir),
                ]
            )

        _interleave(
            index=index,
            key=spec.key,
            name="install",
            sides=((ours, install_ours), (reference, install_ref)),
        )
        _check_install(runner, root, extract_dir, files)

    return Outcome(
        spec=spec,
        files=files,
        data_bytes=data_bytes,
        ours_archive_bytes=archive.stat().st_size,
        tar_archive_bytes=tar_archives[0].stat().st_size,
        pack_ours=pack_ours,
        pack_ref=pack_ref,
        install_ours=install_ours,
        install_ref=install_ref,
    )


def _interleave(
    *,
    index: int,
    key: str,
    name: str,
    sides: tuple[tuple[Callable[[], Sample], Series], tuple[Callable[[], Sample], Series]],
) -> None:
    """Run cpctl and the reference once each, alternating which goes first."""
    (ours, ours_series), (reference, reference_series) = sides
    order = [("cpctl", ours, ours_series), ("reference", reference, reference_series)]
    if index % 2 == 0:
        order.reverse()
    for label, job, series in order:
        sample = job()
        series.samples.append(sample)
        _progress(
            f"[{key}] {name} #{index} {label}: {sample.seconds:.3f} s, "
            f"max RSS {sample.max_rss_bytes / MB:.1f} MB"
        )


def _check_install(runner: Runner, root: Path, extract_dir: Path, files: int) -> None:
    """Both sides must have written every file, and the cpctl root must check clean."""
    for directory in (root / DATASET_DIR, extract_dir / DATASET_DIR):
        found = _count_files(directory) if directory.is_dir() else 0
        if found != files:
            raise BenchError(f"{directory} holds {found} files after install, expected {files}")
    runner.output([*runner.cpctl, "--root", str(root), "integrity-check", "--json"])


# ---------------------------------------------------------------------------- report


def _verdict(value: float, target: float, *, strict: bool = False) -> str:
    ok = value < target if strict else value <= target
    return "PASS" if ok else "MISS"


def report(outcomes: Sequence[Outcome], repeat: int, seed: int, workdir: Path) -> str:
    """The table: median seconds of each side, ratio, target and verdict; then peak memory."""
    tar_version = subprocess.run(
        ["tar", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    header = (
        f"cpctl vs reference ({(tar_version or ['tar'])[0]}, gzip -6, sha256sum); "
        f"median of {repeat} interleaved runs; seed {seed}; workdir {workdir}"
    )
    rows = [("set", "measure", "cpctl", "reference", "ratio", "target", "result")]
    for outcome in outcomes:
        spec = outcome.spec
        for name, ours, ref, target in (
            ("pack", outcome.pack_ours, outcome.pack_ref, spec.pack_target),
            ("install", outcome.install_ours, outcome.install_ref, spec.install_target),
        ):
            ratio = ours.median_seconds / ref.median_seconds
            rows.append(
                (
                    spec.key,
                    f"{name} time",
                    f"{ours.median_seconds:.3f} s",
                    f"{ref.median_seconds:.3f} s",
                    f"{ratio:.2f}x",
                    f"<= {target:.1f}x",
                    _verdict(ratio, target),
                )
            )
        for name, ours, ref in (
            ("pack", outcome.pack_ours, outcome.pack_ref),
            ("install", outcome.install_ours, outcome.install_ref),
        ):
            rows.append(
                (
                    spec.key,
                    f"{name} max RSS",
                    f"{ours.max_rss_mb:.1f} MB",
                    f"{ref.max_rss_mb:.1f} MB",
                    "",
                    f"< {RSS_TARGET_MB:.0f} MB",
                    _verdict(ours.max_rss_mb, RSS_TARGET_MB, strict=True),
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
        lines.append(
            f"{outcome.spec.key}: {outcome.spec.description}; {outcome.files} files, "
            f"{outcome.data_bytes / MB:.1f} MB; archive cpctl {outcome.ours_archive_bytes / MB:.1f} MB, "
            f"tar {outcome.tar_archive_bytes / MB:.1f} MB"
        )
        for name, series in (
            ("pack cpctl", outcome.pack_ours),
            ("pack reference", outcome.pack_ref),
            ("install cpctl", outcome.install_ours),
            ("install reference", outcome.install_ref),
        ):
            runs = ", ".join(f"{sample.seconds:.3f}" for sample in series.samples)
            lines.append(f"   {name:<18} runs (s): {runs}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare cpctl pack/install with GNU tar and sha256sum on generated data."
    )
    parser.add_argument(
        "--only", choices=sorted(SPECS), help="run one dataset only (default: both)"
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("tar", "gzip", "find", "xargs", "sha256sum", "bash"):
        if shutil.which(tool) is None:
            print(f"bench_archive: error: {tool} is not on PATH", file=sys.stderr)
            return 2
    keys = [args.only] if args.only else sorted(SPECS, reverse=True)  # S, then L
    if args.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="cpctl-bench-", dir="/tmp"))
        created = [workdir]
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        taken = [key for key in (*keys, "logs") if (workdir / key).exists()]
        if taken:
            print(
                f"bench_archive: error: {workdir} already holds {', '.join(taken)}", file=sys.stderr
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
    except BenchError as error:
        print(f"bench_archive: error: {error}", file=sys.stderr)
        status = 1
    finally:
        # Deleting only here keeps every timed run on a file system with no fresh deletions.
        if args.keep:
            _progress(f"kept {workdir}")
        else:
            for path in created:
                shutil.rmtree(path, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
