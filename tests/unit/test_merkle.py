"""Merkle tree: RFC 6962 known answers, a naive reference, inclusion and consistency proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    audit_path,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
    verify_leaf_inclusion,
)
from tests.support.examples import examples

# ---------------------------------------------------------------------------------------------
# Certificate Transparency / RFC 6962 reference data (the leaves and expected values of the CT
# merkle tree tests, also shipped as transparency-dev/merkle testonly/constants.go).
# ---------------------------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# Root of the tree over the first n leaves, for n = 0..8.
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

# (leaf index, tree size, audit path)
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (old size, new size, consistency proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


CT_LEAF_HASHES = [_sha256(b"\x00" + leaf) for leaf in CT_LEAVES]


def _unhex(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# ---------------------------------------------------------------------------------------------
# Naive reference: RFC 6962 section 2.1 written down literally (recursive MTH, PATH, SUBPROOF
# over index ranges), independent of ledger.merkle. MTH is memoised per tree so that proofs for
# every leaf of a few hundred trees stay cheap; that changes no value.
# ---------------------------------------------------------------------------------------------

Mth = Callable[[int, int], Any]


def _ref_split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _ref_mth_of(data: Sequence[bytes]) -> Mth:
    @cache
    def mth(lo: int, hi: int) -> bytes:
        if hi == lo:
            return _sha256(b"")
        if hi - lo == 1:
            return _sha256(b"\x00" + data[lo])
        k = _ref_split(hi - lo)
        return _sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))

    return mth


def _ref_root(data: Sequence[bytes]) -> bytes:
    result: bytes = _ref_mth_of(data)(0, len(data))
    return result


def _ref_path(m: int, lo: int, hi: int, mth: Mth) -> list[Any]:
    """PATH(m, D[lo:hi]) with m an absolute leaf index."""
    if hi - lo <= 1:
        return []
    k = _ref_split(hi - lo)
    if m < lo + k:
        return [*_ref_path(m, lo, lo + k, mth), mth(lo + k, hi)]
    return [*_ref_path(m, lo + k, hi, mth), mth(lo, lo + k)]


def _ref_subproof(m: int, lo: int, hi: int, b: bool, mth: Mth) -> list[Any]:
    """SUBPROOF(m, D[lo:hi], b) with m an absolute old tree size."""
    if m == hi:
        return [] if b else [mth(lo, hi)]
    k = _ref_split(hi - lo)
    if m <= lo + k:
        return [*_ref_subproof(m, lo, lo + k, b, mth), mth(lo + k, hi)]
    return [*_ref_subproof(m, lo + k, hi, False, mth), mth(lo, lo + k)]


def _ref_consistency(m: int, size: int, mth: Mth) -> list[bytes]:
    if m in (0, size):
        return []
    return _ref_subproof(m, 0, size, True, mth)


# ---------------------------------------------------------------------------------------------
# What a proof can and cannot say. A proof element is an opaque subtree hash, so the sizes and
# index are not bound by the hashes alone: the path of leaf 0 in a 4-leaf tree also "proves"
# leaf 0 in a 3-leaf tree with the same root, because both shapes combine the same way. The
# exact acceptance rule, derived from the reference (not from the verifier under test): for the
# claimed (index, size), the reference proof is a list of subtrees (index ranges) of the claimed
# tree; the claimed root, written over those subtrees as opaque atoms, must evaluate to the
# given root when the atoms are the supplied proof elements.
# ---------------------------------------------------------------------------------------------


def _range(lo: int, hi: int) -> tuple[int, int]:
    return (lo, hi)


def _pattern(lo: int, hi: int, atoms: dict[tuple[int, int], Any]) -> Any:
    """The RFC tree over D[lo:hi] with the given subtrees replaced by atoms."""
    if (lo, hi) in atoms:
        return atoms[(lo, hi)]
    assert hi - lo > 1, "reference proof does not cover the tree"
    k = _ref_split(hi - lo)
    return (_pattern(lo, lo + k, atoms), _pattern(lo + k, hi, atoms))


def _evaluate(pattern: Any, values: dict[Any, bytes]) -> bytes:
    if isinstance(pattern, tuple):
        return _sha256(b"\x01" + _evaluate(pattern[0], values) + _evaluate(pattern[1], values))
    return values[pattern]


@cache
def _inclusion_shape(index: int, size: int) -> tuple[int, Any]:
    ranges = _ref_path(index, 0, size, _range)
    atoms: dict[tuple[int, int], Any] = {r: j for j, r in enumerate(ranges)}
    atoms[(index, index + 1)] = "leaf"
    return len(ranges), _pattern(0, size, atoms)


def _inclusion_should_verify(
    digest: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    if not 0 <= index < size:
        return False
    length, pattern = _inclusion_shape(index, size)
    if len(path) != length:
        return False
    values: dict[Any, bytes] = dict(enumerate(path))
    values["leaf"] = _sha256(b"\x00" + digest)
    return _evaluate(pattern, values) == expected_root


@cache
def _consistency_shape(old: int, new: int) -> tuple[int, Any, Any]:
    ranges = _ref_subproof(old, 0, new, True, _range)
    atoms: dict[tuple[int, int], Any] = {r: j for j, r in enumerate(ranges)}
    if old & (old - 1) == 0:
        atoms[(0, old)] = "old"  # a complete subtree: the old root itself, not sent
    return len(ranges), _pattern(0, old, atoms), _pattern(0, new, atoms)


def _consistency_should_verify(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    if not 0 <= old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    length, old_pattern, new_pattern = _consistency_shape(old, new)
    if len(proof) != length:
        return False
    values: dict[Any, bytes] = dict(enumerate(proof))
    values["old"] = old_root
    return _evaluate(old_pattern, values) == old_root and _evaluate(new_pattern, values) == new_root


# ---------------------------------------------------------------------------------------------
# Fixtures: distinct digests; digests(n)[:m] == digests(m), so old trees are prefixes.
# ---------------------------------------------------------------------------------------------

MAX_SIZE = 300
DIGESTS = [_sha256(b"event %d" % i) for i in range(MAX_SIZE)]


@cache
def _tree(size: int) -> MerkleTree:
    return MerkleTree(DIGESTS[:size])


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------------------------


def test_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert root([]) == EMPTY_ROOT
    tree = MerkleTree([])
    assert tree.size == 0
    assert tree.root == EMPTY_ROOT
    assert tree.consistency_proof(0) == []
    with pytest.raises(IndexError):
        tree.audit_path(0)
    assert MerkleTree.from_leaf_hashes([]).root == EMPTY_ROOT


def test_leaf_and_node_hash_prefixes() -> None:
    d = DIGESTS[0]
    assert leaf_hash(d) == _sha256(b"\x00" + d)
    assert node_hash(d, DIGESTS[1]) == _sha256(b"\x01" + d + DIGESTS[1])
    assert root([d]) == leaf_hash(d)
    assert root(DIGESTS[:2]) == node_hash(leaf_hash(DIGESTS[0]), leaf_hash(DIGESTS[1]))
    # The odd leaf of a 3-leaf tree is promoted, not paired with a copy of itself.
    left = node_hash(leaf_hash(DIGESTS[0]), leaf_hash(DIGESTS[1]))
    assert root(DIGESTS[:3]) == node_hash(left, leaf_hash(DIGESTS[2]))


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_ct_roots(size: int) -> None:
    tree = MerkleTree.from_leaf_hashes(CT_LEAF_HASHES[:size])
    assert tree.size == size
    assert tree.root.hex() == CT_ROOTS[size]
    assert _ref_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]  # the reference agrees too


def test_ct_root_of_one_leaf_is_its_leaf_hash() -> None:
    assert CT_LEAF_HASHES[0].hex() == CT_ROOTS[1]
    assert node_hash(CT_LEAF_HASHES[0], CT_LEAF_HASHES[1]).hex() == CT_ROOTS[2]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_ct_inclusion(index: int, size: int, path: list[str]) -> None:
    tree = MerkleTree.from_leaf_hashes(CT_LEAF_HASHES[:size])
    assert [p.hex() for p in tree.audit_path(index)] == path
    root_ = bytes.fromhex(CT_ROOTS[size])
    assert verify_leaf_inclusion(CT_LEAF_HASHES[index], index, size, _unhex(path), root_)
    assert not verify_leaf_inclusion(CT_LEAF_HASHES[index - 1], index, size, _unhex(path), root_)


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_ct_consistency(old: int, new: int, proof: list[str]) -> None:
    tree = MerkleTree.from_leaf_hashes(CT_LEAF_HASHES[:new])
    assert [p.hex() for p in tree.consistency_proof(old)] == proof
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, _unhex(proof))
    if old != new:
        assert not verify_consistency(old, new, new_root, old_root, _unhex(proof))


# ---------------------------------------------------------------------------------------------
# Against the naive reference
# ---------------------------------------------------------------------------------------------


def test_matches_reference_for_sizes_0_to_300() -> None:
    for size in range(MAX_SIZE + 1):
        data = DIGESTS[:size]
        mth = _ref_mth_of(data)
        expected_root = mth(0, size)
        tree = MerkleTree(data)
        assert tree.size == size
        assert tree.root == expected_root, size
        assert root(data) == expected_root, size
        assert tree.leaf_hashes == [mth(i, i + 1) for i in range(size)]
        for index in range(size):
            assert tree.audit_path(index) == _ref_path(index, 0, size, mth), (index, size)
        for old in range(size + 1):
            assert tree.consistency_proof(old) == _ref_consistency(old, size, mth), (old, size)


@pytest.mark.parametrize("size", [511, 512, 513, 1000, 1023, 1024, 1025, 4097])
def test_larger_roots_match_reference(size: int) -> None:
    data = [_sha256(i.to_bytes(4, "big")) for i in range(size)]
    assert root(data) == _ref_root(data)
    assert MerkleTree(data).root == _ref_root(data)


def test_module_audit_path_is_the_trees() -> None:
    for size in (1, 2, 7, 33):
        for index in range(size):
            assert audit_path(DIGESTS[:size], index) == _tree(size).audit_path(index)


# ---------------------------------------------------------------------------------------------
# Inclusion
# ---------------------------------------------------------------------------------------------


def test_every_leaf_of_every_size_to_257_verifies() -> None:
    for size in range(1, 258):
        tree = _tree(size)
        tree_root = tree.root
        for index in range(size):
            digest = DIGESTS[index]
            path = tree.audit_path(index)
            assert verify_inclusion(digest, index, size, path, tree_root), (index, size)
            # Another leaf's digest, or this path at another index of the same tree, never
            # verifies (the claimed position is bound by the hashes when the size is right).
            assert not verify_inclusion(DIGESTS[index ^ 1], index, size, path, tree_root)
            for other in {index - 1, index + 1, index ^ 1, index ^ 2, size, -1}:
                if other != index:
                    assert not verify_inclusion(digest, other, size, path, tree_root)
            # Truncated, extended, reversed paths never verify.
            assert not verify_inclusion(digest, index, size, [*path, tree_root], tree_root)
            if path:
                assert not verify_inclusion(digest, index, size, path[:-1], tree_root)
                assert not verify_inclusion(digest, index, size, path[1:], tree_root)
            if len(path) > 1:
                assert not verify_inclusion(digest, index, size, path[::-1], tree_root)


def test_changed_tree_size_verifies_only_for_an_identical_shape() -> None:
    accepted = rejected = 0
    for size in range(1, 65):
        tree = _tree(size)
        for index in range(size):
            path = tree.audit_path(index)
            for claimed in range(0, 2 * size + 2):
                if claimed == size:
                    continue
                expected = _inclusion_should_verify(DIGESTS[index], index, claimed, path, tree.root)
                got = verify_inclusion(DIGESTS[index], index, claimed, path, tree.root)
                assert got == expected, (index, size, claimed)
                accepted += got
                rejected += not got
    assert accepted > 0  # about one wrong claimed size in four passes: shapes repeat often
    assert rejected > accepted


def test_tree_size_is_not_bound_by_an_inclusion_proof() -> None:
    # Documented RFC 9162 behaviour, pinned here so nobody relies on the opposite: the verifier
    # must take tree_size from the anchored batch (the chain), never from the proof's sender.
    tree = _tree(4)
    path = tree.audit_path(0)
    assert verify_inclusion(DIGESTS[0], 0, 4, path, tree.root)
    assert verify_inclusion(DIGESTS[0], 0, 3, path, tree.root)


@settings(max_examples=examples(400), deadline=None)
@given(data=st.data())
def test_any_bit_flip_breaks_inclusion(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 257), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    tree = _tree(size)
    digest, path, tree_root = DIGESTS[index], tree.audit_path(index), tree.root
    target = data.draw(st.integers(-2, len(path) - 1), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    if target == -2:
        digest = _flip(digest, bit)
    elif target == -1:
        tree_root = _flip(tree_root, bit)
    else:
        path = [*path]
        path[target] = _flip(path[target], bit)
    assert not verify_inclusion(digest, index, size, path, tree_root)


@settings(max_examples=examples(300), deadline=None)
@given(
    digest=st.binary(max_size=40),
    index=st.integers(-(2**70), 2**70) | st.booleans(),
    tree_size=st.integers(-(2**70), 2**70) | st.booleans(),
    path=st.lists(st.binary(min_size=30, max_size=33), max_size=70),
    expected_root=st.binary(min_size=31, max_size=33),
)
def test_inclusion_never_raises(
    digest: bytes, index: int, tree_size: int, path: list[bytes], expected_root: bytes
) -> None:
    result = verify_inclusion(digest, index, tree_size, path, expected_root)
    assert result is False


@pytest.mark.parametrize(
    ("index", "size"), [(-1, 4), (4, 4), (5, 4), (0, 0), (0, -1), (True, 4), (0, 2**64 + 1)]
)
def test_inclusion_rejects_out_of_range(index: int, size: int) -> None:
    tree = _tree(4)
    assert not verify_inclusion(DIGESTS[0], index, size, tree.audit_path(0), tree.root)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d, p, r: (d.hex(), p, r),
        lambda d, p, r: (d + b"\x00", p, r),
        lambda d, p, r: (d, [*p[:-1], p[-1][:31]], r),
        lambda d, p, r: (d, [*p[:-1], p[-1].hex()], r),
        lambda d, p, r: (d, [*p[:-1], None], r),
        lambda d, p, r: (d, b"".join(p), r),
        lambda d, p, r: (d, None, r),
        lambda d, p, r: (d, p, r.hex()),
        lambda d, p, r: (d, p, None),
    ],
)
def test_inclusion_rejects_malformed_values(mangle: Callable[..., Any]) -> None:
    tree = _tree(5)
    digest, path, tree_root = mangle(DIGESTS[2], tree.audit_path(2), tree.root)
    assert verify_inclusion(digest, 2, 5, path, tree_root) is False


def test_bytes_like_values_are_accepted() -> None:
    tree = _tree(6)
    path: Any = [bytearray(p) for p in tree.audit_path(3)]
    digest: Any = bytearray(DIGESTS[3])
    tree_root: Any = bytearray(tree.root)
    assert verify_inclusion(digest, 3, 6, path, tree_root)
    assert MerkleTree([*DIGESTS[:3], digest, *DIGESTS[4:6]]).root == tree.root


def test_one_shot_iterables_are_not_lost() -> None:
    digests: Any = iter(DIGESTS[:5])
    assert root(digests) == _tree(5).root
    digests = (d for d in DIGESTS[:5])
    assert MerkleTree(digests).root == _tree(5).root


# ---------------------------------------------------------------------------------------------
# Consistency
# ---------------------------------------------------------------------------------------------


def test_consistency_for_all_sizes_to_64() -> None:
    for new in range(1, 65):
        tree = _tree(new)
        for old in range(1, new + 1):
            old_root = _tree(old).root
            proof = tree.consistency_proof(old)
            assert verify_consistency(old, new, old_root, tree.root, proof), (old, new)
            # Every element and both roots matter.
            for j in range(len(proof)):
                tampered = [*proof]
                tampered[j] = _flip(tampered[j], (old * 31 + new + j) % 256)
                assert not verify_consistency(old, new, old_root, tree.root, tampered)
            bit = (old + new) % 256
            assert not verify_consistency(old, new, _flip(old_root, bit), tree.root, proof)
            assert not verify_consistency(old, new, old_root, _flip(tree.root, bit), proof)
            # Truncated and extended proofs.
            assert not verify_consistency(old, new, old_root, tree.root, [*proof, tree.root])
            if proof:
                assert not verify_consistency(old, new, old_root, tree.root, proof[:-1])
                assert not verify_consistency(old, new, old_root, tree.root, proof[1:])
            # A root that is not a prefix of the new tree.
            if old < new:
                other = MerkleTree([*DIGESTS[: old - 1], DIGESTS[new]]).root
                assert not verify_consistency(old, new, other, tree.root, proof)


def test_changed_sizes_verify_only_for_an_identical_shape() -> None:
    accepted = rejected = 0
    for new in range(1, 65):
        tree = _tree(new)
        for old in range(1, new + 1):
            old_root = _tree(old).root
            proof = tree.consistency_proof(old)
            olds = {0, 1, old - 1, old + 1, 2 * old, new}
            news = {new - 1, new, new + 1, 2 * new}
            if new <= 24:  # every claim near small trees, neighbours only for larger ones
                olds, news = set(range(-1, new + 2)), set(range(0, 2 * new + 2))
            claims = {(o, n) for o in olds for n in news}
            claims.discard((old, new))
            for claimed_old, claimed_new in claims:
                expected = _consistency_should_verify(
                    claimed_old, claimed_new, old_root, tree.root, proof
                )
                got = verify_consistency(claimed_old, claimed_new, old_root, tree.root, proof)
                assert got == expected, (old, new, claimed_old, claimed_new)
                accepted += got
                rejected += not got
    assert accepted > 0
    assert rejected > accepted


def test_consistency_edge_sizes() -> None:
    tree = _tree(9)
    assert tree.consistency_proof(9) == []
    assert tree.consistency_proof(0) == []
    assert verify_consistency(0, 9, EMPTY_ROOT, tree.root, [])
    assert not verify_consistency(0, 9, tree.root, tree.root, [])
    assert not verify_consistency(0, 9, EMPTY_ROOT, tree.root, [tree.root])
    assert verify_consistency(9, 9, tree.root, tree.root, [])
    assert not verify_consistency(9, 9, tree.root, _tree(8).root, [])
    assert not verify_consistency(9, 9, tree.root, tree.root, [tree.root])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    proof = tree.consistency_proof(5)
    assert not verify_consistency(5, 9, _tree(5).root, tree.root, [])
    assert not verify_consistency(9, 5, tree.root, _tree(5).root, proof)
    assert not verify_consistency(-1, 9, _tree(5).root, tree.root, proof)
    assert not verify_consistency(True, 9, _tree(1).root, tree.root, tree.consistency_proof(1))
    for bad in (-1, 10):
        with pytest.raises(ValueError, match="old size"):
            tree.consistency_proof(bad)


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_any_bit_flip_breaks_consistency(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX_SIZE), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    tree = _tree(new)
    proof, old_root, new_root = tree.consistency_proof(old), _tree(old).root, tree.root
    assert verify_consistency(old, new, old_root, new_root, proof)
    target = data.draw(st.integers(-2, len(proof) - 1), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    if target == -2:
        old_root = _flip(old_root, bit)
    elif target == -1:
        new_root = _flip(new_root, bit)
    else:
        proof = [*proof]
        proof[target] = _flip(proof[target], bit)
    assert not verify_consistency(old, new, old_root, new_root, proof)


@settings(max_examples=examples(300), deadline=None)
@given(
    old=st.integers(-(2**70), 2**70) | st.booleans(),
    new=st.integers(-(2**70), 2**70) | st.booleans(),
    old_root=st.binary(min_size=31, max_size=33),
    new_root=st.binary(min_size=31, max_size=33),
    proof=st.lists(st.binary(min_size=31, max_size=33), max_size=70),
)
def test_consistency_never_raises(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    result = verify_consistency(old, new, old_root, new_root, proof)
    assert isinstance(result, bool)


@pytest.mark.parametrize("proof", [None, b"\x00" * 64, "ab" * 32, [None], ["ab" * 16]])
def test_consistency_rejects_malformed_proofs(proof: Any) -> None:
    assert verify_consistency(2, 5, _tree(2).root, _tree(5).root, proof) is False


# ---------------------------------------------------------------------------------------------
# Construction errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [DIGESTS[0].hex(), DIGESTS[0][:31], DIGESTS[0] + b"\x00", b"", None, 7]
)
def test_non_digests_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="32 raw bytes"):
        leaf_hash(bad)
    with pytest.raises(ValueError, match="32 raw bytes"):
        root([DIGESTS[0], bad])
    with pytest.raises(ValueError, match="32 raw bytes"):
        MerkleTree([bad])
    with pytest.raises(ValueError, match="32 raw bytes"):
        MerkleTree.from_leaf_hashes([bad])


@pytest.mark.parametrize("index", [-1, 7, 100])
def test_audit_path_index_out_of_range(index: int) -> None:
    with pytest.raises(IndexError):
        _tree(7).audit_path(index)
