"""Pack and install speed and memory of cpctl against GNU tar and sha256sum, on the same data.

One run measures both sides on the same generated datasets, interleaving ours and the
reference, and prints the median seconds, the ratio ours / reference, the target and
PASS or MISS. It is a report, not a test: it exits 0 whatever the ratios, and non-zero
only when a command fails. See benchmarks/README.md.

    python benchmarks/bench_archive.py [--only S|L] [--repeat N] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import string
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
    Sample,
    Series,
    parse_args,
    progress,
    run_datasets,
    table,
    verdict,
)

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


@dataclass(frozen=True)
class Spec:
    """A dataset and the targets that apply to it."""

    key: str
    description: str
    pack_target: float
    install_target: float
    generate: Callable[[random.Random, Path], int]


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
    progress(f"[{spec.key}] generating {spec.description} in {source}")
    started = time.perf_counter()
    data_bytes = spec.generate(random.Random(f"{seed}-{spec.key}"), source)
    files = _count_files(source)
    progress(
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
        progress(
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
                    verdict(ratio, target),
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
                    verdict(ours.max_rss_mb, RSS_TARGET_MB, strict=True),
                )
            )
    lines = table(header, rows)
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
            lines.append(f"   {name:<18} runs (s): {series.runs()}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(
        argv,
        "Compare cpctl pack/install with GNU tar and sha256sum on generated data.",
        list(SPECS),
        "run one dataset only (default: both)",
    )
    keys = [args.only] if args.only else sorted(SPECS, reverse=True)  # S, then L
    return run_datasets(
        "bench_archive",
        args,
        keys=keys,
        tools=("tar", "gzip", "find", "xargs", "sha256sum", "bash"),
        measure=lambda key, base, runner: measure(SPECS[key], base, runner, args.repeat, args.seed),
        report=lambda outcomes, workdir: report(outcomes, args.repeat, args.seed, workdir),
    )


if __name__ == "__main__":
    sys.exit(main())
