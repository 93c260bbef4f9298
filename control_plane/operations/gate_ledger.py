"""``GateOperations`` methods over the ledger: verify, prove, checkpoint, show."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from control_plane.auth import Action
from control_plane.errors import UsageError
from control_plane.operations import ledger_ops
from control_plane.operations.gate_core import GateCore
from control_plane.operations.results import (
    DocumentResult,
    LedgerShowResult,
    LedgerVerifyResult,
    ProofCheckResult,
)


class LedgerGate(GateCore):
    """Read-only ledger operations (``Action.VERIFY``)."""

    def ledger_verify(self, against: Path | None = None) -> LedgerVerifyResult:
        """Check every entry, link, Merkle root and checkpoint signature; with ``against``,
        prove the ledger still extends a checkpoint saved earlier (rollback, fork)."""
        with self._session(Action.VERIFY, "ledger") as session:
            result = ledger_ops.verify(self.ledger, self.layout, against)
            return replace(result, warnings=tuple(session.warnings))

    def ledger_prove(
        self, *, seq: int | None = None, from_size: int | None = None, to_size: int | None = None
    ) -> DocumentResult:
        """An RFC 9162 inclusion proof of entry ``seq``, or a consistency proof from
        ``from_size``, in the tree of ``to_size`` (default: the newest checkpoint's size)."""
        if (seq is None) == (from_size is None):
            raise UsageError("give exactly one of --seq N or --from-size A")
        with self._session(Action.VERIFY, "ledger") as session:
            if seq is not None:
                proof = ledger_ops.prove_inclusion(self.ledger, seq, to_size)
            else:
                assert from_size is not None  # noqa: S101 -- guaranteed by the check above
                proof = ledger_ops.prove_consistency(self.ledger, from_size, to_size)
            return replace(proof, warnings=tuple(session.warnings))

    def ledger_checkpoint(self) -> DocumentResult:
        """The newest signed checkpoint, for an auditor to keep."""
        with self._session(Action.VERIFY, "ledger") as session:
            result = ledger_ops.newest_checkpoint(self.ledger)
            return replace(result, warnings=tuple(session.warnings))

    def ledger_verify_proof(
        self, proof: Path, checkpoint: Path, *, key: Path | None = None
    ) -> ProofCheckResult:
        """Check a saved proof against a saved checkpoint, offline: reads only the given
        files and the public key (``key``, else this root's ``ledger/ledger.pub``)."""
        return ledger_ops.verify_proof(proof, checkpoint, key, self.layout)

    def ledger_show(self, since: int = 0) -> LedgerShowResult:
        """Ledger entries with ``seq >= since``."""
        with self._session(Action.VERIFY, "ledger") as session:
            entries = tuple(
                dict(entry.fields) for entry in self.ledger.entries() if entry.seq >= since
            )
            return LedgerShowResult(entries=entries, warnings=tuple(session.warnings))
