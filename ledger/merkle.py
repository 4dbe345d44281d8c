"""RFC 6962 / RFC 9162 Merkle tree over 32-byte event digests: roots, inclusion and consistency."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "DIGEST_SIZE",
    "EMPTY_ROOT",
    "MerkleTree",
    "audit_path",
    "inclusion_steps",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
    "verify_leaf_inclusion",
]

DIGEST_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_is_digest_size = DIGEST_SIZE.__eq__


def leaf_hash(digest: bytes) -> bytes:
    """``SHA-256(0x00 || digest)`` for one 32-byte event digest."""
    _check_digest(digest)
    return _sha256(LEAF_PREFIX + digest).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: an interior node from its two children."""
    return _sha256(NODE_PREFIX + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree over raw 32-byte event digests (``leaf_hash`` is applied here)."""
    level = _leaf_level(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def audit_path(digests: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof (leaf level first) of ``digests[index]`` in the tree over ``digests``."""
    return MerkleTree(digests).audit_path(index)


class MerkleTree:
    """An immutable tree built once, level by level, keeping every level for proofs.

    Level 0 holds the leaf hashes; level ``k + 1`` holds ``node_hash`` of consecutive pairs of
    level ``k``, and a trailing odd node is carried up unchanged (never duplicated or re-hashed).

    Why this is exactly the RFC 6962 section 2.1 shape (MTH(D[n]) splits at the largest power of
    two ``k = 2^h`` smaller than ``n``): node ``j`` of level ``l`` covers leaves
    ``[j*2^l, min((j+1)*2^l, n))``. For ``l <= h`` every span ``2^l`` divides ``k``, so each node
    lies wholly inside ``D[0:k]`` or wholly inside ``D[k:n]``, and ``D[0:k]`` fills an even number
    ``k/2^l`` of nodes on each level ``l < h``. Pairing a level therefore pairs the left part and
    the right part separately, with the same odd-node carry in the right part as if it were built
    alone. So node 0 of level ``h`` is the perfect tree MTH(D[0:k]), and the nodes after it are
    the level structure of the ``n - k <= k`` leaves ``D[k:n]`` alone, whose single top node is,
    by induction on ``n``, MTH(D[k:n]) (carried up unchanged if it was complete below ``h``).
    Level ``h + 1`` is then ``node_hash(MTH(D[0:k]), MTH(D[k:n]))`` = MTH(D[n]). A carried node
    has no sibling on its level, which is exactly where RFC 9162 PATH adds no element, so audit
    paths are read straight off the levels.
    """

    __slots__ = ("_levels",)

    _levels: list[list[bytes]]

    def __init__(self, digests: Sequence[bytes]) -> None:
        self._build(_leaf_level(digests))

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> MerkleTree:
        """A tree over already computed leaf hashes (e.g. RFC 6962 test data of any length)."""
        level = list(leaf_hashes)
        for value in level:
            _check_digest(value)
        tree = cls.__new__(cls)
        tree._build(level)
        return tree

    def _build(self, level: list[bytes]) -> None:
        levels = [level]
        while len(level) > 1:
            level = _next_level(level)
            levels.append(level)
        self._levels = levels

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        """MTH of all leaves; ``SHA-256("")`` for the empty tree."""
        top = self._levels[-1]
        return top[0] if top else EMPTY_ROOT

    @property
    def leaf_hashes(self) -> list[bytes]:
        """A copy of level 0."""
        return list(self._levels[0])

    def audit_path(self, index: int) -> list[bytes]:
        """RFC 9162 section 2.1.3.1 inclusion proof of leaf ``index``, leaf level first."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} out of range for a tree of {self.size} leaves")
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 9162 section 2.1.4.1 proof that the first ``old_size`` leaves are a prefix.

        Empty for ``old_size`` 0 or ``size`` (nothing to prove beyond comparing roots).
        """
        size = self.size
        if not 0 <= old_size <= size:
            raise ValueError(f"old size {old_size} out of range for a tree of {size} leaves")
        if old_size in (0, size):
            return []
        proof: list[bytes] = []
        self._subproof(old_size, 0, size, True, proof)
        return proof

    def _subproof(self, m: int, lo: int, hi: int, complete: bool, out: list[bytes]) -> None:
        # RFC 9162 SUBPROOF(m, D[lo:hi], b); elements are appended in the RFC's order (the
        # recursive part first). Depth is at most log2(size).
        n = hi - lo
        if m == n:
            if not complete:
                out.append(self._subtree(lo, hi))
            return
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            self._subproof(m, lo, lo + k, complete, out)
            out.append(self._subtree(lo + k, hi))
        else:
            self._subproof(m - k, lo + k, hi, False, out)
            out.append(self._subtree(lo, lo + k))

    def _subtree(self, lo: int, hi: int) -> bytes:
        # MTH(D[lo:hi]) for a node of the RFC tree: a perfect subtree aligned to its size, or a
        # right-edge subtree (hi == size) whose start is aligned to 2^ceil(log2(hi - lo)). Either
        # way it is one stored node, found without hashing.
        height = (hi - lo - 1).bit_length()
        return self._levels[height][lo >> height]


def verify_inclusion(
    digest: bytes, index: int, tree_size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2 check that raw event ``digest`` is leaf ``index`` of the tree.

    Returns False (never raises) for any malformed input. The proof does not authenticate
    ``tree_size`` by itself: take it from the anchored batch, not from the proof's sender.
    """
    if not _is_digest(digest):
        return False
    return verify_leaf_inclusion(
        _sha256(LEAF_PREFIX + digest).digest(), index, tree_size, path, expected_root
    )


def verify_leaf_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """As ``verify_inclusion``, for an already computed leaf hash."""
    if not (
        _is_index(index)
        and _is_index(tree_size)
        and index < tree_size
        and _is_digest(leaf)
        and _is_digest(expected_root)
        and _all_digests(path)
    ):
        return False
    fn, sn = index, tree_size - 1
    r = bytes(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def inclusion_steps(
    digest: bytes, index: int, tree_size: int, path: Sequence[bytes]
) -> list[tuple[str, bytes, bytes]] | None:
    """The hashing ``verify_inclusion`` does, step by step, for people and apps to follow:
    the leaf hash (side ``leaf``, no sibling), then each node as (side of the sibling, sibling,
    result); the last result is the root the path leads to. None for a malformed proof."""
    if not (
        _is_digest(digest)
        and _is_index(index)
        and _is_index(tree_size)
        and index < tree_size
        and _all_digests(path)
    ):
        return None
    r = _sha256(LEAF_PREFIX + digest).digest()
    steps = [("leaf", b"", r)]
    fn, sn = index, tree_size - 1
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            steps.append(("left", bytes(p), r))
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
            steps.append(("right", bytes(p), r))
        fn >>= 1
        sn >>= 1
    return steps if sn == 0 else None


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 check that the tree ``old_root`` is a prefix of ``new_root``.

    Equal sizes need an empty proof and equal roots; size 0 needs an empty proof and the empty
    tree root. Returns False (never raises) for any malformed input.
    """
    if not (
        _is_index(old_size)
        and _is_index(new_size)
        and old_size <= new_size
        and _is_digest(old_root)
        and _is_digest(new_root)
        and _all_digests(proof)
    ):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    nodes = list(proof)
    if old_size & (old_size - 1) == 0:
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(nodes[0])
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(NODE_PREFIX + c + fr).digest()
            sr = _sha256(NODE_PREFIX + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def _leaf_level(digests: Sequence[bytes]) -> list[bytes]:
    # Validation and hashing both run at C speed on the good path (the per-item Python check
    # costs as much as a third of the hashing); the slow loop only names the bad item.
    if not isinstance(digests, list | tuple):
        digests = list(digests)  # iterated twice below; a one-shot iterable must not be lost
    sha256 = _sha256
    try:
        if all(map(_is_digest_size, map(len, digests))):
            return [sha256(LEAF_PREFIX + d).digest() for d in digests]
    except TypeError:
        pass
    for position, digest in enumerate(digests):
        if not _is_digest(digest):
            raise ValueError(
                f"leaf {position}: expected {DIGEST_SIZE} raw bytes, got {_describe(digest)}"
            )
    raise ValueError(f"leaves must be {DIGEST_SIZE}-byte bytes values")  # not reached in practice


def _next_level(level: list[bytes]) -> list[bytes]:
    sha256 = _sha256
    # zip stops at the shorter slice, leaving the odd last node (if any) for the line below.
    pairs = zip(level[0::2], level[1::2], strict=False)
    parents = [sha256(NODE_PREFIX + left + right).digest() for left, right in pairs]
    if len(level) & 1:
        parents.append(level[-1])  # the odd node is carried up unchanged (RFC 6962 shape)
    return parents


def _check_digest(value: bytes) -> None:
    if not _is_digest(value):
        raise ValueError(f"expected {DIGEST_SIZE} raw bytes, got {_describe(value)}")


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes"
    return type(value).__name__


def _is_digest(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == DIGEST_SIZE


def _all_digests(values: object) -> bool:
    if isinstance(values, str | bytes | bytearray) or not isinstance(values, Sequence):
        return False
    return all(_is_digest(v) for v in values)


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
