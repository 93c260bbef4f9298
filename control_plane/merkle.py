"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing as pure functions.

Leaves hash as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``; the domain separation keeps a leaf from
ever being passed off as an interior node.  Proof generation follows the
recursive definitions of RFC 9162 section 2.1 but runs iteratively with
O(log n) extra memory; verification is the RFC's bit-walking algorithm and
raises instead of returning a flag.  Indexes count from 0, as in the RFC.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter

from control_plane.digests import is_hex64
from control_plane.errors import CheckFailedError, UsageError

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleFrontier:
    """An incremental Merkle tree head: the size and the roots of its perfect subtrees.

    ``subtrees`` holds one root per set bit of ``size``, largest (leftmost)
    first, so appending to a log of a million entries touches at most
    twenty hashes and the state persists as a few lines of JSON.
    """

    __slots__ = ("_size", "_subtrees")

    def __init__(self, size: int = 0, subtrees: Sequence[bytes] = ()) -> None:
        """Raises: UsageError: the subtree count does not match the size's binary form."""
        if size < 0 or len(subtrees) != size.bit_count():
            raise UsageError(
                f"invalid Merkle frontier: size {size} needs {max(size, 0).bit_count()} "
                f"subtree roots, got {len(subtrees)}"
            )
        if any(len(root) != HASH_SIZE for root in subtrees):
            raise UsageError("invalid Merkle frontier: every subtree root must be 32 bytes")
        self._size = size
        self._subtrees = list(subtrees)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def subtrees(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest first."""
        return tuple(self._subtrees)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash; merges equal-sized subtrees like a binary carry."""
        merged = leaf
        carry = self._size
        while carry & 1:
            merged = node_hash(self._subtrees.pop(), merged)
            carry >>= 1
        self._subtrees.append(merged)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of all leaves so far; :data:`EMPTY_ROOT` when empty."""
        if not self._subtrees:
            return EMPTY_ROOT
        result = self._subtrees[-1]
        for subtree in reversed(self._subtrees[:-1]):
            result = node_hash(subtree, result)
        return result

    def to_json(self) -> dict[str, object]:
        """A JSON-compatible dict: ``{"size": int, "subtrees": [hex, ...]}``."""
        return {"size": self._size, "subtrees": [root.hex() for root in self._subtrees]}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MerkleFrontier:
        """Rebuild a frontier from :meth:`to_json` output.

        Raises:
            UsageError: missing keys, wrong types, non-hex roots, or a count that
                does not match the size.
        """
        size = data.get("size")
        subtrees = data.get("subtrees")
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(subtrees, list):
            raise UsageError("invalid Merkle frontier: expected integer size and list of subtrees")
        roots: list[bytes] = []
        for item in subtrees:
            if not isinstance(item, str) or not is_hex64(item):
                raise UsageError("invalid Merkle frontier: subtree roots must be 64 hex digits")
            roots.append(bytes.fromhex(item))
        return cls(size, roots)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleFrontier):
            return NotImplemented
        return self._size == other._size and self._subtrees == other._subtrees

    def __hash__(self) -> int:
        return hash((self._size, tuple(self._subtrees)))

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1 over leaf hashes; :data:`EMPTY_ROOT` for none."""
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


def _range_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    frontier = MerkleFrontier()
    for position in range(start, end):
        frontier.append(leaf_hashes[position])
    return frontier.root()


def _split(width: int) -> int:
    """The largest power of two strictly less than ``width`` (``width`` >= 2)."""
    return 1 << ((width - 1).bit_length() - 1)


RangeRoot = Callable[[int, int], bytes]
"""``range_root(start, end)`` returns MTH(D[start:end]); proofs only ask for ranges whose
start is a multiple of the largest power of two not above their width."""


def inclusion_path(index: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 section 2.1.3.1, siblings from the leaf upwards.

    Raises:
        UsageError: ``index`` is not a position in the tree.
    """
    if not 0 <= index < size:
        raise UsageError(f"no leaf {index} in a Merkle tree of size {size}")
    top_down: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            top_down.append(range_root(middle, end))
            end = middle
        else:
            top_down.append(range_root(start, middle))
            start = middle
    top_down.reverse()
    return top_down


def consistency_path(old_size: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """PROOF(old_size, D[size]) = SUBPROOF(old_size, D[size], true) of RFC 9162 section 2.1.4.1.

    Empty when ``old_size`` is 0 or equals the tree size: nothing needs proving.

    Raises:
        UsageError: ``old_size`` is negative or larger than the tree.
    """
    if not 0 <= old_size <= size:
        raise UsageError(f"cannot prove consistency from size {old_size} to size {size}")
    if old_size in (0, size):
        return []
    top_down: list[bytes] = []
    remaining, start, end, whole_old_tree = old_size, 0, size, True
    while remaining != end - start:
        middle = start + _split(end - start)
        if remaining <= middle - start:
            top_down.append(range_root(middle, end))
            end = middle
        else:
            top_down.append(range_root(start, middle))
            remaining -= middle - start
            start = middle
            whole_old_tree = False
    if not whole_old_tree:
        top_down.append(range_root(start, end))
    top_down.reverse()
    return top_down


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """:func:`inclusion_path` over leaf hashes held in memory.

    Raises:
        UsageError: ``index`` is not a position in the tree.
    """
    return inclusion_path(
        index, len(leaf_hashes), lambda start, end: _range_root(leaf_hashes, start, end)
    )


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """:func:`consistency_path` over leaf hashes held in memory.

    Raises:
        UsageError: ``old_size`` is negative or larger than the tree.
    """
    return consistency_path(
        old_size, len(leaf_hashes), lambda start, end: _range_root(leaf_hashes, start, end)
    )


def _check_hashes(kind: str, hashes: Iterable[bytes]) -> None:
    if any(not isinstance(item, bytes) or len(item) != HASH_SIZE for item in hashes):
        raise CheckFailedError(f"{kind} rejected: every hash must be 32 bytes")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash ``leaf`` sits at ``index`` in the tree of ``size`` with ``root``.

    RFC 9162 section 2.1.3.2.

    Raises:
        CheckFailedError: the proof does not lead from the leaf to the root.
    """
    _check_hashes("inclusion proof", [leaf, root, *proof])
    if not 0 <= index < size:
        raise CheckFailedError(
            f"inclusion proof rejected: no leaf {index} in a tree of size {size}"
        )
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise CheckFailedError("inclusion proof rejected: longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise CheckFailedError("inclusion proof rejected: shorter than the tree is deep")
    if not hmac.compare_digest(result, root):
        raise CheckFailedError(f"inclusion proof rejected: leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``.

    RFC 9162 section 2.1.4.2.  An empty old tree is consistent with any tree
    (its root must be :data:`EMPTY_ROOT`), and equal sizes need equal roots;
    both take an empty proof.

    Raises:
        CheckFailedError: the proof does not connect the two tree heads.
    """
    _check_hashes("consistency proof", [old_root, new_root, *proof])
    if not 0 <= old_size <= new_size:
        raise CheckFailedError(
            f"consistency proof rejected: size {old_size} cannot precede size {new_size}"
        )
    if old_size in (0, new_size):
        if proof:
            raise CheckFailedError("consistency proof rejected: expected an empty proof")
        if old_size == 0 and not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise CheckFailedError("consistency proof rejected: old root is not the empty root")
        if old_size == new_size and not hmac.compare_digest(old_root, new_root):
            raise CheckFailedError(f"consistency proof rejected: two roots for size {old_size}")
        return
    path = list(proof)
    if not path:
        raise CheckFailedError("consistency proof rejected: empty proof")
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_result = new_result = path[0]
    for sibling in path[1:]:
        if sn == 0:
            raise CheckFailedError("consistency proof rejected: longer than the tree is deep")
        if fn & 1 or fn == sn:
            old_result = node_hash(sibling, old_result)
            new_result = node_hash(sibling, new_result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_result = node_hash(new_result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise CheckFailedError("consistency proof rejected: shorter than the tree is deep")
    if not hmac.compare_digest(old_result, old_root):
        raise CheckFailedError(f"consistency proof rejected: old root of size {old_size} differs")
    if not hmac.compare_digest(new_result, new_root):
        raise CheckFailedError(f"consistency proof rejected: new root of size {new_size} differs")


def state_leaf(path: str, sha256_hex: str) -> bytes:
    """``path NUL hex`` in UTF-8: the leaf data for one installed file.

    Raises:
        UsageError: the path is empty, holds a NUL or is not valid UTF-8, or the digest
            is not 64 lower-case hex digits.
    """
    if not path or "\x00" in path:
        raise UsageError(f"invalid state path {path!r}: must be non-empty without NUL")
    if not is_hex64(sha256_hex):
        raise UsageError(f"invalid digest for {path!r}: expected 64 lower-case hex digits")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"invalid state path {path!r}: not encodable as UTF-8") from None
    return encoded + b"\x00" + sha256_hex.encode("ascii")


def state_root(pairs: Iterable[tuple[str, str]]) -> str:
    """Hex MTH over ``(path, sha256_hex)`` pairs sorted by UTF-8 path bytes.

    Raises:
        UsageError: a pair is malformed (see :func:`state_leaf`) or a path repeats.
    """
    # UTF-8 preserves code point order, and so does "surrogatepass" for lone
    # surrogates: sorting the str is sorting its bytes, without encoding 100,000 keys.
    ordered = sorted(pairs, key=itemgetter(0))
    frontier = MerkleFrontier()
    append = frontier.append
    sha256 = hashlib.sha256
    previous: str | None = None
    for path, digest in ordered:
        if path == previous:
            raise UsageError(f"path {path!r} appears twice in the installed state")
        previous = path
        append(sha256(b"\x00" + state_leaf(path, digest)).digest())
    return frontier.root().hex()
