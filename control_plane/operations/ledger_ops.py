"""Ledger commands: the signing key, verify, prove, verify-proof and the newest checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from control_plane.checkpoints import (
    Checkpoint,
    load_private_key,
    load_public_key,
    parse_checkpoint,
    verify_checkpoint,
)
from control_plane.errors import CheckFailedError, UsageError
from control_plane.jsoncanon import strict_loads
from control_plane.layout import RootLayout
from control_plane.ledger import Ledger, decode_entry
from control_plane.ledger_audit import audit_ledger
from control_plane.ledger_tree import LedgerTree
from control_plane.merkle import leaf_hash, verify_consistency, verify_inclusion
from control_plane.operations.results import DocumentResult, LedgerVerifyResult, ProofCheckResult
from control_plane.proofs import check_proof, consistency_document, inclusion_document
from control_plane.signing import key_id

KEY_ENV = "CONTROL_PLANE_LEDGER_KEY"


class LedgerKeySource:
    """Loads the root's private ledger key on first use (from ``CONTROL_PLANE_LEDGER_KEY``
    or ``.control_plane/ledger.key``) and checks it against the committed public key."""

    def __init__(self, layout: RootLayout, env: Mapping[str, str]) -> None:
        self.layout = layout
        self.path = Path(env[KEY_ENV]) if env.get(KEY_ENV) else layout.ledger_key
        self._key: Ed25519PrivateKey | None = None

    def __call__(self) -> Ed25519PrivateKey | None:
        """The key, or None when there is none.

        Raises:
            UsageError: the key is unreadable, exposed, or not the root's key.
        """
        if self._key is None and self.path.exists():
            key = load_private_key(self.path)
            public = self.layout.ledger_public_key
            if public.exists() and key_id(key.public_key()) != key_id(load_public_key(public)):
                raise UsageError(
                    f"{self.path} is not the private half of {self.layout.relative(public)}"
                )
            self._key = key
        return self._key

    def require(self) -> None:
        """Refuse to start a mutating command that could not sign its checkpoint.

        Raises:
            UsageError: no usable key (naming where it was looked for).
        """
        if self() is not None:
            return
        if not self.layout.ledger_public_key.exists():
            raise UsageError(
                "this root has no ledger signing key, so its ledger cannot be checkpointed",
                hint="cpctl init (creates the key pair without touching anything else)",
            )
        public = self.layout.relative(self.layout.ledger_public_key)
        raise UsageError(
            f"the ledger signing key is missing ({self.path}); "
            f"checkpoints are signed with the private half of {public}",
            hint=f"restore the key, or point {KEY_ENV} at it",
        )


def public_key(layout: RootLayout) -> Ed25519PublicKey | None:
    """The root's committed ledger public key, or None when it has none.

    Raises:
        UsageError: the file exists but is not an ed25519 public key.
    """
    path = layout.ledger_public_key
    return load_public_key(path) if path.exists() else None


def read_checkpoint_file(path: Path) -> Checkpoint:
    """A checkpoint saved by an auditor (``cpctl ledger checkpoint > saved.json``).

    Raises:
        UsageError: unreadable or not a checkpoint.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        return parse_checkpoint(raw.strip(), str(path))
    except CheckFailedError as exc:
        raise UsageError(str(exc)) from None


def verify(ledger: Ledger, layout: RootLayout, against: Path | None) -> LedgerVerifyResult:
    """See ``GateOperations.ledger_verify``."""
    saved = None if against is None else read_checkpoint_file(against)
    audit = audit_ledger(ledger, public_key(layout), saved)
    return LedgerVerifyResult(
        entries=audit.entries,
        head=audit.head,
        root=audit.root,
        checkpoints=audit.checkpoints,
        checkpoint=None if audit.newest is None else audit.newest.to_json(),
        key_id=audit.key_id,
        against=None if saved is None else saved.to_json(),
    )


def _target(ledger: Ledger, size: int | None) -> tuple[LedgerTree, int, bytes]:
    """The Merkle store, the tree size to prove against (default: the newest checkpoint's)
    and its root: the signed one when a checkpoint has that size, else the store's.

    Raises:
        UsageError: no Merkle store, or no tree of that size.
    """
    if ledger.tree is None:
        raise UsageError("this ledger has no Merkle store")
    newest = ledger.checkpoints.newest()
    count = ledger.count()
    if size is None:
        size = count if newest is None else newest.tree_size
    if not 0 < size <= count:
        raise UsageError(f"no tree of size {size}: the ledger has {count} entries")
    if newest is not None and newest.tree_size == size:
        return ledger.tree, size, bytes.fromhex(newest.root_hash)
    return ledger.tree, size, ledger.tree.root(size)


def prove_inclusion(ledger: Ledger, seq: int, size: int | None) -> DocumentResult:
    """See ``GateOperations.ledger_prove``."""
    tree, size, root = _target(ledger, size)
    if not 0 <= seq < size:
        raise UsageError(f"no ledger entry {seq} in the tree of size {size}")
    line = _line(ledger, seq)
    path = tree.inclusion(seq, size)
    try:
        verify_inclusion(leaf_hash(line), seq, size, path, root)
    except CheckFailedError:
        raise CheckFailedError(
            f"ledger entry {seq} does not lead to the signed root of size {size}",
            hint="cpctl ledger verify",
        ) from None
    return DocumentResult(document=inclusion_document(seq, size, line, path, root))


def prove_consistency(ledger: Ledger, old_size: int, size: int | None) -> DocumentResult:
    """See ``GateOperations.ledger_prove``."""
    tree, size, root = _target(ledger, size)
    if not 0 < old_size <= size:
        raise UsageError(f"cannot prove consistency from size {old_size} to size {size}")
    path = tree.consistency(old_size, size)
    old_root = tree.root(old_size)
    try:
        verify_consistency(old_size, size, old_root, root, path)
    except CheckFailedError:
        raise CheckFailedError(
            f"the Merkle store does not connect size {old_size} to the signed root of size {size}",
            hint="cpctl ledger verify",
        ) from None
    return DocumentResult(document=consistency_document(old_size, size, old_root, root, path))


def _line(ledger: Ledger, seq: int) -> bytes:
    """The stored line of entry ``seq``: a binary search over byte offsets, O(log n) reads.

    Entries are in ``seq`` order; the top-level ``"seq"`` is the last ``,"seq":`` in a
    canonical line (only strings and numbers follow it), and the entry found is decoded
    and checked, so a damaged ledger cannot return the wrong line.
    """
    with ledger.path.open("rb") as handle:
        low, high = 0, handle.seek(0, 2)  # the line sought starts in [low, high)
        while low < high:
            middle = (low + high) // 2
            handle.seek(middle - 1 if middle else 0)
            if middle:
                handle.readline()  # now at the first line starting at or after middle
            if handle.tell() >= high:
                high = middle
                continue
            line = handle.readline().rstrip(b"\n")
            found = _seq_of(line)
            if found is None or found == seq:
                break
            if found < seq:
                low = handle.tell()
            else:
                high = middle
        else:
            handle.seek(low)
            line = handle.readline().rstrip(b"\n")
    if line and _seq_of(line) == seq and decode_entry(line, None).seq == seq:
        return line
    raise UsageError(f"no ledger entry {seq} found", hint="cpctl ledger verify")


def _seq_of(line: bytes) -> int | None:
    marker = line.rfind(b',"seq":')
    if marker < 0:
        return None
    digits = line[marker + 7 : marker + 27].split(b",", 1)[0]
    return int(digits) if digits.isdigit() else None


def verify_proof(
    proof_path: Path, checkpoint_path: Path, key_path: Path | None, layout: RootLayout
) -> ProofCheckResult:
    """See ``GateOperations.ledger_verify_proof``."""
    key_file = key_path or layout.ledger_public_key
    if not key_file.exists():
        raise UsageError(
            "no public key to check the checkpoint against",
            hint="pass --key ledger/ledger.pub (the root's committed ledger key)",
        )
    key = load_public_key(key_file)
    checkpoint = read_checkpoint_file(checkpoint_path)
    verify_checkpoint(checkpoint, key, f"checkpoint {checkpoint_path}")
    try:
        document: Any = strict_loads(proof_path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read proof {proof_path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"proof {proof_path} is not strict JSON: {exc}") from None
    outcome = check_proof(document, checkpoint)
    return ProofCheckResult(kind=outcome.kind, statement=outcome.statement, key_id=key_id(key))


def newest_checkpoint(ledger: Ledger) -> DocumentResult:
    """See ``GateOperations.ledger_checkpoint``."""
    newest = ledger.checkpoints.newest()
    if newest is None:
        raise UsageError("the ledger has no signed checkpoint yet")
    return DocumentResult(document=newest.to_json())
