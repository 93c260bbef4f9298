"""RFC 9162 Merkle hashing: naive references, known answers, pymerkle cross-checks, tampering."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymerkle import InclusionProof, InmemoryTree
from pymerkle import verify_consistency as pymerkle_verify_consistency
from pymerkle import verify_inclusion as pymerkle_verify_inclusion

from control_plane.errors import CheckFailedError, UsageError
from control_plane.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    state_leaf,
    state_root,
    verify_consistency,
    verify_inclusion,
)

# --- naive reference, transcribed from RFC 9162 section 2.1 over raw entries ---------------


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_shape(m: int, n: int) -> list[bool]:
    """Left/right turns from the root to leaf m: the only thing an inclusion path encodes."""
    if n == 1:
        return []
    k = _k(n)
    return [True, *ref_shape(m, k)] if m < k else [False, *ref_shape(m - k, n - k)]


def ref_subproof_shape(m: int, n: int, b: bool = True) -> list[object]:
    """The recursion SUBPROOF(m, D[n], b) takes: all that a consistency proof encodes."""
    if m == n:
        return [b]
    k = _k(n)
    if m <= k:
        return ["left", *ref_subproof_shape(m, k, b)]
    return ["right", *ref_subproof_shape(m - k, n - k, False)]


ENTRIES = [f"entry-{i}".encode() for i in range(200)]
LEAVES = [leaf_hash(entry) for entry in ENTRIES]
REF_ROOTS = [ref_mth(ENTRIES[:n]) for n in range(65)]


def flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


# --- primitives and known answers -------------------------------------------------------------

CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
# Published with the Certificate Transparency test suites (e.g. certificate-transparency-go
# merkle/log_verifier_test.go); the naive reference above reproduces every one of them.
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [  # (index, size, path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CT_CONSISTENCY = [  # (old_size, new_size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (3, 8, ["0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
]  # fmt: skip
CT_LEAF_HASHES = [leaf_hash(entry) for entry in CT_LEAVES]


def test_primitives_use_rfc_domain_separation() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9), ids=lambda n: f"size{n}")
def test_known_answer_roots(size: int) -> None:
    assert ref_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    assert root_from_leaf_hashes(CT_LEAF_HASHES[:size]).hex() == CT_ROOTS[size]


def test_known_answer_full_tree_root() -> None:
    expected = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert root_from_leaf_hashes(CT_LEAF_HASHES).hex() == expected


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION, ids=lambda v: str(v)[:6])
def test_known_answer_inclusion(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(CT_LEAF_HASHES[:size], index)
    assert [item.hex() for item in proof] == path
    verify_inclusion(CT_LEAF_HASHES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY, ids=lambda v: str(v)[:6])
def test_known_answer_consistency(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(CT_LEAF_HASHES[:new], old)
    assert [item.hex() for item in proof] == path
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    verify_consistency(old, new, old_root, new_root, proof)


# --- optimised code against the naive reference, every size up to 64 ------------------------


@pytest.mark.parametrize("size", range(1, 65), ids=lambda n: f"size{n}")
def test_against_reference(size: int) -> None:
    leaves, root = LEAVES[:size], REF_ROOTS[size]
    assert root_from_leaf_hashes(leaves) == root
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert proof == ref_path(index, ENTRIES[:size])
        verify_inclusion(leaves[index], index, size, proof, root)
    for old in range(1, size + 1):
        proof = consistency_proof(leaves, old)
        assert proof == ref_subproof(old, ENTRIES[:size], True)
        verify_consistency(old, size, REF_ROOTS[old], root, proof)


# --- verification refuses tampering ----------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 13), ids=lambda n: f"size{n}")
def test_inclusion_rejects_every_single_bit_flip(size: int) -> None:
    leaves, root = LEAVES[:size], REF_ROOTS[size]
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        for position in range(len(proof)):
            for bit in range(256):
                tampered = [*proof]
                tampered[position] = flip(proof[position], bit)
                with pytest.raises(CheckFailedError):
                    verify_inclusion(leaves[index], index, size, tampered, root)
        for bit in range(256):
            with pytest.raises(CheckFailedError):
                verify_inclusion(flip(leaves[index], bit), index, size, proof, root)
            with pytest.raises(CheckFailedError):
                verify_inclusion(leaves[index], index, size, proof, flip(root, bit))


@pytest.mark.parametrize("size", range(2, 13), ids=lambda n: f"size{n}")
def test_consistency_rejects_every_single_bit_flip(size: int) -> None:
    leaves, new_root = LEAVES[:size], REF_ROOTS[size]
    for old in range(1, size):
        proof, old_root = consistency_proof(leaves, old), REF_ROOTS[old]
        for position in range(len(proof)):
            for bit in range(256):
                tampered = [*proof]
                tampered[position] = flip(proof[position], bit)
                with pytest.raises(CheckFailedError):
                    verify_consistency(old, size, old_root, new_root, tampered)
        for bit in range(256):
            with pytest.raises(CheckFailedError):
                verify_consistency(old, size, flip(old_root, bit), new_root, proof)
            with pytest.raises(CheckFailedError):
                verify_consistency(old, size, old_root, flip(new_root, bit), proof)


@pytest.mark.parametrize("size", range(1, 65), ids=lambda n: f"size{n}")
def test_inclusion_rejects_wrong_index_size_and_shape(size: int) -> None:
    leaves, root = LEAVES[:size], REF_ROOTS[size]
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        for other in range(-1, size + 2):
            if other != index:
                with pytest.raises(CheckFailedError):
                    verify_inclusion(leaves[index], other, size, proof, root)
        # A path only encodes left/right turns, so a size with the same turns for this
        # index is indistinguishable (RFC 9162 binds the size through the signed tree head).
        for other in range(0, 2 * size + 2):
            if other == size:
                continue
            if 0 <= index < other and ref_shape(index, other) == ref_shape(index, size):
                verify_inclusion(leaves[index], index, other, proof, root)
            else:
                with pytest.raises(CheckFailedError):
                    verify_inclusion(leaves[index], index, other, proof, root)
        for broken in (proof[:-1], [*proof, root], [root, *proof], [*proof, EMPTY_ROOT]):
            if broken != proof:
                with pytest.raises(CheckFailedError):
                    verify_inclusion(leaves[index], index, size, broken, root)


@pytest.mark.parametrize("size", range(2, 33), ids=lambda n: f"size{n}")
def test_consistency_rejects_wrong_sizes_and_swapped_roots(size: int) -> None:
    leaves, new_root = LEAVES[:size], REF_ROOTS[size]
    for old in range(1, size):
        proof, old_root = consistency_proof(leaves, old), REF_ROOTS[old]
        for other_old in range(0, size + 2):
            if other_old != old:
                with pytest.raises(CheckFailedError):
                    verify_consistency(other_old, size, old_root, new_root, proof)
        # As with inclusion, a new size whose recursion takes the same turns is
        # indistinguishable; every other size must fail.
        for other_new in range(0, 2 * size + 2):
            if other_new == size:
                continue
            shape = ref_subproof_shape(old, size)
            if other_new > old and ref_subproof_shape(old, other_new) == shape:
                verify_consistency(old, other_new, old_root, new_root, proof)
            else:
                with pytest.raises(CheckFailedError):
                    verify_consistency(old, other_new, old_root, new_root, proof)
        with pytest.raises(CheckFailedError):
            verify_consistency(old, size, new_root, old_root, proof)
        for broken in ([], proof[:-1], [*proof, old_root], [proof[0], *proof]):
            with pytest.raises(CheckFailedError):
                verify_consistency(old, size, old_root, new_root, broken)


TRIVIAL_CONSISTENCY = [
    pytest.param(0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True, id="empty-to-empty"),
    pytest.param(0, 5, EMPTY_ROOT, REF_ROOTS[5], [], True, id="empty-to-any"),
    pytest.param(3, 3, REF_ROOTS[3], REF_ROOTS[3], [], True, id="same-size-same-root"),
    pytest.param(0, 5, REF_ROOTS[1], REF_ROOTS[5], [], False, id="empty-with-wrong-root"),
    pytest.param(0, 0, EMPTY_ROOT, REF_ROOTS[1], [], False, id="empty-to-empty-other-root"),
    pytest.param(3, 3, REF_ROOTS[3], REF_ROOTS[4], [], False, id="same-size-other-root"),
    pytest.param(3, 3, REF_ROOTS[3], REF_ROOTS[3], [EMPTY_ROOT], False, id="same-size-nonempty"),
    pytest.param(0, 1, EMPTY_ROOT, REF_ROOTS[1], [EMPTY_ROOT], False, id="empty-nonempty-proof"),
    pytest.param(2, 1, REF_ROOTS[2], REF_ROOTS[1], [], False, id="time-travel"),
    pytest.param(-1, 1, EMPTY_ROOT, REF_ROOTS[1], [], False, id="negative-size"),
    pytest.param(1, 2, REF_ROOTS[1], REF_ROOTS[2], [], False, id="missing-proof"),
    pytest.param(1, 2, b"short", REF_ROOTS[2], [LEAVES[1]], False, id="short-root"),
    pytest.param(1, 2, REF_ROOTS[1], REF_ROOTS[2], [LEAVES[1][:31]], False, id="short-hash"),
]


@pytest.mark.parametrize(("old", "new", "old_root", "new_root", "proof", "ok"), TRIVIAL_CONSISTENCY)
def test_consistency_edge_cases(
    *, old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], ok: bool
) -> None:
    if ok:
        verify_consistency(old, new, old_root, new_root, proof)
    else:
        with pytest.raises(CheckFailedError):
            verify_consistency(old, new, old_root, new_root, proof)


INCLUSION_EDGES = [
    pytest.param(0, 0, [], EMPTY_ROOT, id="empty-tree"),
    pytest.param(1, 1, [], REF_ROOTS[1], id="index-equals-size"),
    pytest.param(-1, 1, [], REF_ROOTS[1], id="negative-index"),
    pytest.param(0, 1, [], b"x" * 31, id="short-root"),
    pytest.param(0, 2, ["not bytes"], REF_ROOTS[2], id="non-bytes-proof"),
]


@pytest.mark.parametrize(("index", "size", "proof", "root"), INCLUSION_EDGES)
def test_inclusion_edge_cases(index: int, size: int, proof: list[bytes], root: bytes) -> None:
    with pytest.raises(CheckFailedError):
        verify_inclusion(LEAVES[0], index, size, proof, root)


@pytest.mark.parametrize(
    ("size", "index"), [(0, 0), (3, 3), (3, -1)], ids=["empty", "past-end", "negative"]
)
def test_inclusion_proof_refuses_bad_index(size: int, index: int) -> None:
    with pytest.raises(UsageError):
        inclusion_proof(LEAVES[:size], index)


@pytest.mark.parametrize(("size", "old"), [(3, 4), (3, -1)], ids=["past-end", "negative"])
def test_consistency_proof_refuses_bad_size(size: int, old: int) -> None:
    with pytest.raises(UsageError):
        consistency_proof(LEAVES[:size], old)


@pytest.mark.parametrize("size", [0, 1, 7], ids=lambda n: f"size{n}")
def test_consistency_proof_trivial_sizes_are_empty(size: int) -> None:
    assert consistency_proof(LEAVES[:size], 0) == []
    assert consistency_proof(LEAVES[:size], size) == []


# --- the incremental frontier ----------------------------------------------------------------


def test_frontier_matches_batch_root_for_every_size_up_to_200() -> None:
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT
    for size in range(1, 201):
        frontier.append(LEAVES[size - 1])
        assert frontier.size == size
        assert len(frontier.subtrees) == size.bit_count()
        assert frontier.root() == root_from_leaf_hashes(LEAVES[:size])
        restored = MerkleFrontier.from_json(json.loads(json.dumps(frontier.to_json())))
        assert restored == frontier
        assert restored.root() == frontier.root()
    restored.append(leaf_hash(b"next"))
    assert restored.root() == root_from_leaf_hashes([*LEAVES, leaf_hash(b"next")])


def test_frontier_extend_equals_appends() -> None:
    one, two = MerkleFrontier(), MerkleFrontier()
    one.extend(LEAVES[:37])
    for leaf in LEAVES[:37]:
        two.append(leaf)
    assert one == two
    assert hash(one) == hash(two)
    assert "size=37" in repr(one)


BAD_FRONTIERS = [
    pytest.param({"subtrees": []}, id="no-size"),
    pytest.param({"size": 1}, id="no-subtrees"),
    pytest.param({"size": "1", "subtrees": ["00" * 32]}, id="size-as-text"),
    pytest.param({"size": True, "subtrees": ["00" * 32]}, id="size-as-bool"),
    pytest.param({"size": 3, "subtrees": ["00" * 32]}, id="too-few-subtrees"),
    pytest.param({"size": 1, "subtrees": ["00" * 32, "11" * 32]}, id="too-many-subtrees"),
    pytest.param({"size": -1, "subtrees": []}, id="negative-size"),
    pytest.param({"size": 1, "subtrees": ["zz" * 32]}, id="non-hex"),
    pytest.param({"size": 1, "subtrees": ["AB" * 32]}, id="upper-case-hex"),
    pytest.param({"size": 1, "subtrees": ["00" * 31]}, id="short-root"),
    pytest.param({"size": 1, "subtrees": [0]}, id="root-as-number"),
    pytest.param({"size": 1, "subtrees": "00" * 32}, id="subtrees-as-text"),
]


@pytest.mark.parametrize("data", BAD_FRONTIERS)
def test_frontier_from_json_refuses_malformed_state(data: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        MerkleFrontier.from_json(data)


def test_frontier_constructor_refuses_bad_roots() -> None:
    with pytest.raises(UsageError):
        MerkleFrontier(1, [b"short"])


# --- cross-check against pymerkle 7 ----------------------------------------------------------


def pymerkle_inclusion_to_rfc(proof: InclusionProof, leaf: bytes) -> list[bytes]:
    """RFC 9162 PATH from a pymerkle 7 inclusion proof.

    pymerkle numbers leaves from 1 and its ``path`` starts with the proven leaf's own
    hash, followed by the sibling hashes from the leaf upwards; the RFC path is exactly
    that list without its first element.  (pymerkle's consistency paths follow a
    different layout, so they are compared by verification only.)
    """
    assert proof.path[0] == leaf
    return list(proof.path[1:])


@pytest.fixture(scope="module")
def pymerkle_tree() -> InmemoryTree:
    tree = InmemoryTree()  # RFC 9162 prefixes: security is on by default
    for entry in ENTRIES[:40]:
        tree.append_entry(entry)
    return tree


@pytest.mark.parametrize("size", range(1, 41), ids=lambda n: f"size{n}")
def test_matches_pymerkle(pymerkle_tree: InmemoryTree, size: int) -> None:
    leaves = LEAVES[:size]
    root = root_from_leaf_hashes(leaves)
    assert pymerkle_tree.get_root(size) == root
    for position in range(1, size + 1):
        leaf = leaves[position - 1]
        assert pymerkle_tree.get_leaf(position) == leaf
        theirs = pymerkle_tree.prove_inclusion(position, size)
        ours = inclusion_proof(leaves, position - 1)
        assert pymerkle_inclusion_to_rfc(theirs, leaf) == ours
        verify_inclusion(leaf, position - 1, size, ours, pymerkle_tree.get_root(size))
        pymerkle_verify_inclusion(leaf, root, theirs, index=position, size=size)
    for old in range(1, size + 1):
        old_root = pymerkle_tree.get_root(old)
        verify_consistency(
            old, size, old_root, pymerkle_tree.get_root(size), consistency_proof(leaves, old)
        )
        theirs_c = pymerkle_tree.prove_consistency(old, size)
        pymerkle_verify_consistency(root_from_leaf_hashes(LEAVES[:old]), root, theirs_c)


# --- installed-state tree --------------------------------------------------------------------

HEX_A = "a" * 64
HEX_B = "b" * 64


def test_state_leaf_layout() -> None:
    assert state_leaf("docs/é.md", HEX_A) == "docs/é.md".encode() + b"\x00" + HEX_A.encode()


def test_state_root_sorts_by_utf8_bytes_and_ignores_input_order() -> None:
    # "Z" (0x5a) < "a" (0x61) < "é" (0xc3 0xa9) in UTF-8; "\uff5e" sorts after "\U0001f600"
    # in UTF-16 code units but before it in UTF-8.
    pairs = [("\U0001f600", HEX_A), ("a", HEX_B), ("\uff5e", HEX_A), ("Z", HEX_B), ("é", HEX_A)]
    ordered = ["Z", "a", "é", "\uff5e", "\U0001f600"]
    lookup = dict(pairs)
    expected = ref_mth([state_leaf(path, lookup[path]) for path in ordered]).hex()
    assert state_root(pairs) == expected
    assert state_root(reversed(pairs)) == expected


def test_state_root_empty_is_empty_root() -> None:
    assert state_root([]) == EMPTY_ROOT.hex()


def test_state_root_changes_with_any_digest_or_path() -> None:
    base = state_root([("a", HEX_A), ("b", HEX_B)])
    assert state_root([("a", HEX_B), ("b", HEX_B)]) != base
    assert state_root([("a", HEX_A), ("c", HEX_B)]) != base
    assert state_root([("a", HEX_A)]) != base


BAD_STATE = [
    pytest.param([("", HEX_A)], id="empty-path"),
    pytest.param([("a\x00b", HEX_A)], id="nul-in-path"),
    pytest.param([("a", "A" * 64)], id="upper-case-digest"),
    pytest.param([("a", "a" * 63)], id="short-digest"),
    pytest.param([("a", HEX_A), ("a", HEX_B)], id="duplicate-path"),
    pytest.param([("bad\udcff", HEX_A)], id="unencodable-path"),
]


@pytest.mark.parametrize("pairs", BAD_STATE)
def test_state_root_refuses_malformed_pairs(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(UsageError):
        state_root(pairs)


@given(
    st.dictionaries(
        st.text(min_size=1).filter(lambda s: "\x00" not in s),
        st.sampled_from([HEX_A, HEX_B]),
        max_size=20,
    )
)
def test_state_root_property_matches_reference(mapping: dict[str, str]) -> None:
    ordered = sorted(mapping, key=lambda path: path.encode("utf-8", "surrogatepass"))
    try:
        expected = ref_mth([state_leaf(path, mapping[path]) for path in ordered]).hex()
    except UsageError:
        with pytest.raises(UsageError):
            state_root(mapping.items())
        return
    assert state_root(mapping.items()) == expected
