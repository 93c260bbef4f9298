"""Ledger speed on a million entries: verify, prove, append, against sha256sum of the same file.

Targets (issue 4): ``cpctl ledger verify`` under 30 s and 500 MB peak RSS; ``ledger prove``
under 50 ms; one append under 20 ms.

Each configuration builds a scratch root with ``cpctl init``, then writes the ledger directly
with the real encoding (``entry_hash`` + ``canonical_json``, chained from the init entry), one
checkpoint every K entries signed with the root's real key (K=1 is what one checkpoint per
operation gives), and the Merkle store with ``LedgerTree.rebuild``.  It then times, in this
order (appends change the ledger):

* ``cpctl ledger verify`` in a new process: wall time and peak RSS (``os.wait4``);
* ``ledger prove --seq`` / ``--from-size`` in-process through ``GateOperations`` (median of
  20, random old positions and the newest entry), and in a new process (start-up included);
* one ``Ledger.append`` with the real key source (entry, leaf, signed checkpoint; median of 20);
* ``sha256sum`` over the ledger file, as the machine's reading-and-hashing reference.

It prints a table with PASS/MISS.  It is a report, not a test: it exits 0 whatever the
figures, and non-zero only when a command fails.

    python benchmarks/bench_ledger.py [--entries N] [--every K[,K...]] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from control_plane.checkpoints import load_private_key, sign_checkpoint
from control_plane.layout import RootLayout
from control_plane.ledger import Ledger, LedgerRecord, canonical_json, entry_hash, strict_loads
from control_plane.ledger_tree import LedgerTree
from control_plane.merkle import MerkleFrontier, leaf_hash
from control_plane.operations.gate import GateOperations
from control_plane.operations.ledger_ops import LedgerKeySource

VERIFY_SECONDS = 30.0
VERIFY_RSS_MB = 500.0
PROVE_MS = 50.0
APPEND_MS = 20.0
REPEAT = 20
MB = 1_000_000
TIME = "2026-01-01T00:00:00Z"


class BenchError(Exception):
    """A command the benchmark depends on failed; the message says which and why."""


@dataclass(frozen=True)
class Row:
    label: str
    value: float
    unit: str
    target: float | None = None  # figures under this PASS; None: reported only

    def render(self) -> str:
        verdict = "" if self.target is None else ("PASS" if self.value < self.target else "MISS")
        target = "" if self.target is None else f"< {self.target:g} {self.unit}"
        return f"  {self.label:<52} {self.value:>10.2f} {self.unit:<3} {target:<11} {verdict}"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_plane", *args]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=_env())
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}


def timed_process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process, output discarded."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {process.returncode}: {stderr.strip()}")
    return elapsed, usage.ru_maxrss * 1024 / MB  # ru_maxrss is in KiB on Linux


def median_ms(action: Callable[[], object], repeat: int = REPEAT) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


# --- building a big ledger -------------------------------------------------------------------


def entries(first: bytes, count: int) -> Iterator[bytes]:
    """``count`` stored lines: ``first`` (the init entry) then chained install entries."""
    yield first
    prev = strict_loads(first)["hash"]
    for seq in range(1, count):
        fields: dict[str, object] = {
            "v": 1,
            "seq": seq,
            "time": TIME,
            "prev": prev,
            "actor": "alice",
            "role": "admin",
            "action": "install",
            "target": f"PKG-{seq % 997}",
            "result": "ok",
            "digests": {"archive": f"sha256:{seq:064x}"},
            "details": {"files": seq % 13, "version": "1.0.0"},
            "txn": f"{seq:032x}",
        }
        fields["hash"] = prev = entry_hash(fields)
        yield canonical_json(fields)


def build(root: Path, count: int, every: int) -> None:
    """Replace the init-only ledger of ``root`` with ``count`` entries and their checkpoints."""
    layout = RootLayout(root)
    key = load_private_key(layout.ledger_key)
    ledger_path = layout.ledger / "ledger.jsonl"
    checkpoints_path = layout.ledger / "checkpoints.jsonl"
    first = ledger_path.read_bytes().splitlines()[0]
    kept_checkpoints = checkpoints_path.read_bytes()  # the one init signed, at size 1
    frontier = MerkleFrontier()
    with (
        ledger_path.open("wb", buffering=1 << 20) as ledger,
        checkpoints_path.open("wb", buffering=1 << 20) as checkpoints,
    ):
        checkpoints.write(kept_checkpoints)
        for line in entries(first, count):
            ledger.write(line + b"\n")
            frontier.append(leaf_hash(line))
            size = frontier.size
            if size > 1 and (size % every == 0 or size == count):
                checkpoint = sign_checkpoint(key, size, frontier.root(), TIME)
                checkpoints.write(checkpoint.encode() + b"\n")
    ledger_lines = (line[:-1] for line in ledger_path.open("rb"))
    LedgerTree(layout.merkle_store).rebuild(ledger_lines)


# --- measuring ---------------------------------------------------------------------------------


def measure(root: Path, count: int, every: int) -> list[Row]:
    rows: list[Row] = []
    ledger_file = root / "ledger" / "ledger.jsonl"
    seconds, rss = timed_process(cli("--root", str(root), "ledger", "verify"))
    rows.append(Row("cpctl ledger verify: wall time", seconds, "s", VERIFY_SECONDS))
    rows.append(Row("cpctl ledger verify: peak RSS", rss, "MB", VERIFY_RSS_MB))
    reference = min(timed_process(["sha256sum", str(ledger_file)])[0] for _ in range(3))
    rows.append(Row("sha256sum ledger.jsonl (reference)", reference, "s"))
    rows.append(Row("verify / sha256sum", seconds / reference, "x"))

    gate = GateOperations(root, env={})
    rng = random.Random(every)
    old = iter([rng.randrange(count) for _ in range(REPEAT)])
    rows.append(
        Row(
            "prove --seq (random old entry), in-process",
            median_ms(lambda: gate.ledger_prove(seq=next(old))),
            "ms",
            PROVE_MS,
        )
    )
    rows.append(
        Row(
            "prove --seq (newest entry), in-process",
            median_ms(lambda: gate.ledger_prove(seq=count - 1)),
            "ms",
            PROVE_MS,
        )
    )
    sizes = iter([rng.randrange(1, count) for _ in range(REPEAT)])
    rows.append(
        Row(
            "prove --from-size (random), in-process",
            median_ms(lambda: gate.ledger_prove(from_size=next(sizes))),
            "ms",
            PROVE_MS,
        )
    )
    for label, args in (
        ("prove --seq (random old entry), new process", ("--seq", str(count // 3))),
        ("prove --from-size (random), new process", ("--from-size", str(count // 3))),
    ):
        argv = cli("--root", str(root), "ledger", "prove", *args)
        wall = statistics.median(timed_process(argv)[0] for _ in range(5)) * 1000
        rows.append(Row(label, wall, "ms"))

    layout = RootLayout(root)
    book = Ledger(
        layout.ledger, tree_dir=layout.merkle_store, signing_key=LedgerKeySource(layout, {})
    )
    record = LedgerRecord(
        actor="alice",
        role="admin",
        action="hash_update",
        target="docs/guide.md",
        result="ok",
        digests={"old": "sha256:" + "1" * 64, "new": "sha256:" + "2" * 64},
        details={},
    )
    rows.append(
        Row(
            "one append (entry + leaf + signed checkpoint)",
            median_ms(lambda: book.append(record)),
            "ms",
            APPEND_MS,
        )
    )
    seconds_after, _ = timed_process(cli("--root", str(root), "ledger", "verify"))
    rows.append(
        Row(f"cpctl ledger verify after {REPEAT} appends", seconds_after, "s", VERIFY_SECONDS)
    )
    return rows


def configuration(workdir: Path, count: int, every: int) -> list[Row]:
    root = workdir / f"root-k{every}"
    if root.exists():
        shutil.rmtree(root)
    run(cli("--root", str(root), "init"))
    start = time.perf_counter()
    build(root, count, every)
    built = time.perf_counter() - start
    ledger_mb = (root / "ledger" / "ledger.jsonl").stat().st_size / MB
    checkpoints_mb = (root / "ledger" / "checkpoints.jsonl").stat().st_size / MB
    rows = [
        Row("build (entries, signed checkpoints, Merkle store)", built, "s"),
        Row("ledger.jsonl size", ledger_mb, "MB"),
        Row("checkpoints.jsonl size", checkpoints_mb, "MB"),
    ]
    return rows + measure(root, count, every)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger entries")
    parser.add_argument(
        "--every", default="1,1000", help="checkpoint every K entries; comma-separated K values"
    )
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch roots")
    options = parser.parse_args(argv)
    if options.entries < 2:
        parser.error("--entries must be at least 2")
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for every in (int(k) for k in options.every.split(",")):
            print(f"\n{options.entries:,} entries, a signed checkpoint every {every} entries")
            for row in configuration(workdir, options.entries, every):
                print(row.render(), flush=True)
    except BenchError as error:
        print(f"bench_ledger: {error}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"\nscratch roots kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
