"""``GateOperations`` methods over identity cards: mint, validate, build the registry."""

from __future__ import annotations

from control_plane.auth import Action
from control_plane.operations import ids
from control_plane.operations.gate_core import GateCore


class IdsGate(GateCore):
    """Identity cards (``ids/cards/``, ``.ledger/ids.jsonl``, ``ids/registry.yaml``)."""

    def _ids_store(self) -> ids.IdsStore:
        return ids.IdsStore(self.layout.root, self.ledger)

    def ids_mint(self, kind: str, path: str) -> ids.IdMintResult:
        """Mint an identity card for one existing artifact inside the root (maintainer+):
        writes ``ids/cards/ULID.yaml`` and its identity-ledger entry in one transaction."""
        with self._session(Action.UPDATE, path) as session:
            return ids.mint(session, self._ids_store(), kind, path)

    def ids_validate(self, rules: str = "all") -> ids.IdsValidateResult:
        """Every committed card unchanged and present, structure, uniqueness, ledger chain;
        ``rules`` narrows the report to ``immutability`` or ``structure``."""
        with self._session(Action.VERIFY, "ids") as session:
            return ids.validate(session, self._ids_store(), rules)

    def ids_build_registry(self, *, check: bool = False) -> ids.IdsRegistryResult:
        """Write ``ids/registry.yaml`` from the committed cards (``check``: only compare)."""
        action = Action.VERIFY if check else Action.UPDATE
        with self._session(action, "ids/registry.yaml") as session:
            return ids.build_registry(session, self._ids_store(), check=check)
