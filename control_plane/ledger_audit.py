"""Full verification of a ledger: entries, chain, Merkle roots and signed checkpoints.

One streaming pass recomputes every entry's hash, every chain link and the
Merkle tree over the stored lines; every checkpoint's signature is checked
(in worker threads: ed25519 verification releases the GIL) and its root is
compared with the recomputed root at its size.  Because every checkpoint must
equal a prefix of the one ledger, successive checkpoints are consistent with
each other; a mismatch names the entries between the last good checkpoint and
the bad one.  ``against`` compares a checkpoint an auditor saved earlier the
same way, which catches a rollback (the ledger is now shorter) and a fork (its
first entries differ), even when every hash was recomputed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from control_plane.checkpoints import Checkpoint, verify_checkpoint
from control_plane.errors import CheckFailedError
from control_plane.ledger import GENESIS, Ledger, check_link, decode_entry
from control_plane.merkle import MerkleFrontier, leaf_hash
from control_plane.signing import key_id

_BATCH = 256  # checkpoints per signature-checking task
_IN_FLIGHT = 8  # queued tasks at most: parsing outruns ed25519, so an unbounded queue
# would hold every checkpoint of a long ledger in memory


@dataclass(frozen=True)
class LedgerAudit:
    """What a clean verification established."""

    entries: int
    head: str | None
    root: str
    checkpoints: int
    newest: Checkpoint | None
    key_id: str | None
    against: Checkpoint | None


class _CheckpointStream:
    """Checkpoints in order, their signatures checked in the background."""

    def __init__(self, ledger: Ledger, public_key: Ed25519PublicKey | None) -> None:
        self._source = ledger.checkpoints.entries()
        self._public_key = public_key
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._futures: deque[Future[None]] = deque()
        self._batch: list[tuple[int, Checkpoint]] = []
        self.count = 0
        self.last: Checkpoint | None = None

    def __iter__(self) -> Iterator[tuple[int, Checkpoint]]:
        previous: Checkpoint | None = None
        for number, checkpoint in self._source:
            where = f"checkpoint (checkpoints.jsonl line {number})"
            if self._public_key is None:
                raise CheckFailedError(
                    f"{where}: the root has no ledger public key (ledger/ledger.pub)"
                )
            if previous is not None and checkpoint.tree_size < previous.tree_size:
                raise CheckFailedError(
                    f"{where}: tree size {checkpoint.tree_size} is smaller than the "
                    f"previous checkpoint's {previous.tree_size} (history rolled back)"
                )
            if (
                previous is not None
                and checkpoint.tree_size == previous.tree_size
                and checkpoint.root_hash != previous.root_hash
            ):
                raise CheckFailedError(
                    f"{where}: a second, different root for tree size {checkpoint.tree_size}"
                )
            self._batch.append((number, checkpoint))
            if len(self._batch) >= _BATCH:
                self._submit()
            previous = self.last = checkpoint
            self.count += 1
            yield number, checkpoint

    def _submit(self) -> None:
        batch, self._batch = self._batch, []
        key = self._public_key
        if key is None:  # refused in __iter__ before anything is batched
            return

        def check() -> None:
            for number, checkpoint in batch:
                verify_checkpoint(checkpoint, key, f"checkpoint (checkpoints.jsonl line {number})")

        self._futures.append(self._pool.submit(check))
        while len(self._futures) > _IN_FLIGHT:
            self._futures.popleft().result()  # in file order: the first failure first

    def finish(self) -> None:
        """Wait for every signature; raise the first failure in file order."""
        if self._batch:
            self._submit()
        while self._futures:
            self._futures.popleft().result()

    def close(self) -> None:
        """Stop the workers (after :meth:`finish`, or early on another failure)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def audit_ledger(
    ledger: Ledger,
    public_key: Ed25519PublicKey | None,
    against: Checkpoint | None = None,
) -> LedgerAudit:
    """Verify everything about ``ledger``; return what was established.

    Raises:
        CheckFailedError: naming the first bad entry, link, checkpoint or signature.
    """
    if against is not None:
        _check_saved(against, public_key)
    stream = _CheckpointStream(ledger, public_key)
    checkpoints = iter(stream)
    pending = next(checkpoints, None)
    frontier = MerkleFrontier()
    expected_prev, last_good = GENESIS, 0
    try:
        while pending is not None and pending[1].tree_size == 0:
            _compare(pending, frontier, last_good)
            pending = next(checkpoints, None)
        for number, line in ledger.log.lines():
            entry = decode_entry(line, number)
            check_link(entry, frontier.size, expected_prev)
            expected_prev = entry.hash
            frontier.append(leaf_hash(line))
            while pending is not None and pending[1].tree_size == frontier.size:
                _compare(pending, frontier, last_good)
                last_good = frontier.size
                pending = next(checkpoints, None)
            if against is not None and against.tree_size == frontier.size:
                _compare_saved(against, frontier)
        if pending is not None:
            number, checkpoint = pending
            raise CheckFailedError(
                f"checkpoint (checkpoints.jsonl line {number}) covers {checkpoint.tree_size} "
                f"entries but the ledger has only {frontier.size}: entries were removed "
                "(truncated or rolled back)"
            )
        stream.finish()
    finally:
        stream.close()
    size = frontier.size
    if size and (stream.last is None or stream.last.tree_size < size):
        first = 0 if stream.last is None else stream.last.tree_size
        raise CheckFailedError(
            f"ledger entries {first}..{size - 1} are not covered by a signed checkpoint "
            "(appended without the ledger key, or forged)"
        )
    if against is not None and against.tree_size > size:
        raise CheckFailedError(
            f"the saved checkpoint covers {against.tree_size} entries but the ledger has only "
            f"{size}: history was rolled back or truncated"
        )
    return LedgerAudit(
        entries=size,
        head=None if size == 0 else expected_prev,
        root=frontier.root().hex(),
        checkpoints=stream.count,
        newest=stream.last,
        key_id=None if public_key is None else key_id(public_key),
        against=against,
    )


def _compare(pending: tuple[int, Checkpoint], frontier: MerkleFrontier, last_good: int) -> None:
    number, checkpoint = pending
    if frontier.root().hex() != checkpoint.root_hash:
        first = min(last_good, max(frontier.size - 1, 0))
        raise CheckFailedError(
            f"ledger entries {first}..{frontier.size - 1} do not match the signed checkpoint "
            f"of tree size {checkpoint.tree_size} (checkpoints.jsonl line {number}): "
            "history was rewritten"
        )


def _check_saved(saved: Checkpoint, public_key: Ed25519PublicKey | None) -> None:
    if public_key is None:
        raise CheckFailedError("the root has no ledger public key (ledger/ledger.pub)")
    current = key_id(public_key)
    if saved.key_id != current:
        raise CheckFailedError(
            f"the saved checkpoint was signed by {saved.key_id}, but the root's ledger key is "
            f"now {current}: the key was replaced"
        )
    verify_checkpoint(saved, public_key, "saved checkpoint")


def _compare_saved(saved: Checkpoint, frontier: MerkleFrontier) -> None:
    if frontier.root().hex() != saved.root_hash:
        raise CheckFailedError(
            f"the ledger's first {saved.tree_size} entries do not match the saved checkpoint: "
            "history was rewritten or forked"
        )
