"""Ledger proofs as portable JSON documents in RFC 9162 form, and their offline check.

Inclusion (``control-plane.inclusion-proof/1``)::

    {"schema", "hash_algorithm": "sha256", "leaf_index": i (from 0), "tree_size": n,
     "entry": "<the exact ledger line>", "leaf_hash": hex SHA-256(0x00 || entry),
     "inclusion_path": [hex, ...] (RFC 9162 2.1.3, leaf upwards), "root_hash": hex}

Consistency (``control-plane.consistency-proof/1``)::

    {"schema", "hash_algorithm": "sha256", "tree_size_1": m, "tree_size_2": n,
     "root_hash_1": hex, "root_hash_2": hex, "consistency_path": [hex, ...] (RFC 9162 2.1.4)}

Any Certificate Transparency verifier checks them with the paths and sizes
as given; :func:`check_proof` does the same against a signed checkpoint.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control_plane.checkpoints import Checkpoint
from control_plane.digests import is_hex64
from control_plane.errors import CheckFailedError, UsageError
from control_plane.merkle import leaf_hash, verify_consistency, verify_inclusion

INCLUSION_SCHEMA = "control-plane.inclusion-proof/1"
CONSISTENCY_SCHEMA = "control-plane.consistency-proof/1"
_INCLUSION_KEYS = frozenset(
    {
        "schema",
        "hash_algorithm",
        "leaf_index",
        "tree_size",
        "entry",
        "leaf_hash",
        "inclusion_path",
        "root_hash",
    }
)
_CONSISTENCY_KEYS = frozenset(
    {
        "schema",
        "hash_algorithm",
        "tree_size_1",
        "tree_size_2",
        "root_hash_1",
        "root_hash_2",
        "consistency_path",
    }
)


def inclusion_document(
    index: int, size: int, entry: bytes, path: Sequence[bytes], root: bytes
) -> dict[str, Any]:
    """The inclusion proof of ledger line ``entry`` at ``index`` in the tree of ``size``."""
    return {
        "schema": INCLUSION_SCHEMA,
        "hash_algorithm": "sha256",
        "leaf_index": index,
        "tree_size": size,
        "entry": entry.decode("utf-8"),
        "leaf_hash": leaf_hash(entry).hex(),
        "inclusion_path": [node.hex() for node in path],
        "root_hash": root.hex(),
    }


def consistency_document(
    old_size: int, size: int, old_root: bytes, root: bytes, path: Sequence[bytes]
) -> dict[str, Any]:
    """The proof that the tree of ``size`` extends the tree of ``old_size``."""
    return {
        "schema": CONSISTENCY_SCHEMA,
        "hash_algorithm": "sha256",
        "tree_size_1": old_size,
        "tree_size_2": size,
        "root_hash_1": old_root.hex(),
        "root_hash_2": root.hex(),
        "consistency_path": [node.hex() for node in path],
    }


@dataclass(frozen=True)
class ProofCheck:
    """What a verified proof establishes, in one sentence."""

    kind: str
    statement: str


def _size(document: Mapping[str, Any], key: str) -> int:
    value = document[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"proof: {key} must be a non-negative integer")
    return value


def _hash(value: object, key: str) -> bytes:
    if not isinstance(value, str) or not is_hex64(value):
        raise UsageError(f"proof: {key} must be 64 lower-case hex digits")
    return bytes.fromhex(value)


def _path(document: Mapping[str, Any], key: str) -> list[bytes]:
    value = document[key]
    if not isinstance(value, list):
        raise UsageError(f"proof: {key} must be a list of hashes")
    return [_hash(item, key) for item in value]


def _shape(document: object) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        raise UsageError("proof: not a JSON object")
    schema = document.get("schema")
    keys = {INCLUSION_SCHEMA: _INCLUSION_KEYS, CONSISTENCY_SCHEMA: _CONSISTENCY_KEYS}.get(
        str(schema)
    )
    if keys is None:
        raise UsageError(f"proof: unknown schema {schema!r}")
    if set(document) != keys:
        raise UsageError(f"proof: expected exactly the keys {sorted(keys)}")
    if document["hash_algorithm"] != "sha256":
        raise UsageError("proof: hash_algorithm must be sha256")
    return str(schema), document


def _against(checkpoint: Checkpoint, size: int, root: bytes, what: str) -> None:
    if checkpoint.tree_size != size:
        raise CheckFailedError(
            f"proof rejected: it is for tree size {size}, the checkpoint is for "
            f"{checkpoint.tree_size} (prove against the checkpoint's size)"
        )
    if not hmac.compare_digest(root.hex(), checkpoint.root_hash):
        raise CheckFailedError(f"proof rejected: its {what} is not the checkpoint's root")


def check_proof(document: object, checkpoint: Checkpoint) -> ProofCheck:
    """Verify an inclusion or consistency proof against a (signature-checked) checkpoint.

    Raises:
        UsageError: the document is not a well-formed proof.
        CheckFailedError: the proof does not hold for the checkpoint.
    """
    schema, proof = _shape(document)
    if schema == INCLUSION_SCHEMA:
        index, size = _size(proof, "leaf_index"), _size(proof, "tree_size")
        root = _hash(proof["root_hash"], "root_hash")
        leaf = _hash(proof["leaf_hash"], "leaf_hash")
        entry = proof["entry"]
        if not isinstance(entry, str):
            raise UsageError("proof: entry must be a string")
        if not hmac.compare_digest(leaf_hash(entry.encode("utf-8")), leaf):
            raise CheckFailedError("proof rejected: leaf_hash is not the hash of entry")
        _against(checkpoint, size, root, "root_hash")
        verify_inclusion(leaf, index, size, _path(proof, "inclusion_path"), root)
        return ProofCheck("inclusion", f"ledger entry {index} is in the signed tree of size {size}")
    old_size, size = _size(proof, "tree_size_1"), _size(proof, "tree_size_2")
    old_root = _hash(proof["root_hash_1"], "root_hash_1")
    root = _hash(proof["root_hash_2"], "root_hash_2")
    _against(checkpoint, size, root, "root_hash_2")
    verify_consistency(old_size, size, old_root, root, _path(proof, "consistency_path"))
    return ProofCheck(
        "consistency",
        f"the tree of size {old_size} with root {old_root.hex()} is a prefix of the signed "
        f"tree of size {size}",
    )
