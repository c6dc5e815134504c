"""RFC 9162's Merkle tree hash, inclusion and consistency proofs (section 2.1), computed from
the hashes of complete subtrees so that a proof reads O(log n) stored nodes, never the log.

A node is named (level, index): the subtree over leaves [index * 2**level, (index + 1) * 2**level).
Every function that builds a proof takes `node(level, index) -> hash`; `wanted` runs one with a
recording reader first, so the store fetches every node a proof needs in one query."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Hash = bytes
NodeFn = Callable[[int, int], Hash]
EMPTY_ROOT: Hash = hashlib.sha256(b"").digest()  # the root of the tree of no leaves


class ProofError(ValueError):
    """A proof that does not verify, or a request for one that cannot exist."""


def leaf_hash(data: bytes) -> Hash:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: Hash, right: Hash) -> Hash:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below n (n >= 2): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(start: int, end: int, node: NodeFn) -> Hash:
    """MTH(D[start:end]) of a range that RFC 9162's recursion reaches (an aligned start)."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return node(n.bit_length() - 1, start // n)
    k = _split(n)
    return node_hash(range_hash(start, start + k, node), range_hash(start + k, end, node))


def root(size: int, node: NodeFn) -> Hash:
    return range_hash(0, size, node)


def inclusion_proof(index: int, size: int, node: NodeFn) -> list[Hash]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[Hash] = []
    start, end = 0, size
    while end - start > 1:  # walk down from the root, then read the path bottom-up
        k = _split(end - start)
        if index < start + k:
            path.append(range_hash(start + k, end, node))
            end = start + k
        else:
            path.append(range_hash(start, start + k, node))
            start += k
    return path[::-1]


def consistency_proof(first: int, second: int, node: NodeFn) -> list[Hash]:
    """PROOF(first, D[0:second]) of RFC 9162 section 2.1.4.1 (empty when first is 0 or second)."""
    if not 0 <= first <= second:
        raise ProofError(f"a tree of {first} leaves cannot be a prefix of one of {second}")
    if first == 0 or first == second:
        return []
    proof: list[Hash] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(range_hash(start, end, node))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(range_hash(start + k, end, node))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(range_hash(start, start + k, node))

    subproof(first, 0, second, True)
    return proof


def wanted(build: Callable[[NodeFn], object]) -> list[tuple[int, int]]:
    """The nodes `build` reads, in order, found by running it once over placeholder hashes (the
    nodes a proof reads depend on the sizes alone, never on the hashes)."""
    keys: list[tuple[int, int]] = []

    def record(level: int, index: int) -> Hash:
        keys.append((level, index))
        return bytes(32)

    build(record)
    return list(dict.fromkeys(keys))


def _lsb(value: int) -> bool:
    return value & 1 == 1


def verify_inclusion(index: int, size: int, leaf: Hash, path: Sequence[Hash], expected_root: Hash) -> None:
    """RFC 9162 section 2.1.3.2; raises ProofError unless `leaf` is leaf `index` of the tree of
    `size` leaves whose root is `expected_root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if _lsb(fn) or fn == sn:
            r = node_hash(p, r)
            while not _lsb(fn) and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != expected_root:
        raise ProofError(f"leaf {index} is not in the tree of {size} leaves with this root")


def verify_consistency(first: int, second: int, first_root: Hash, second_root: Hash, proof: Sequence[Hash]) -> None:
    """RFC 9162 section 2.1.4.2; raises ProofError unless the tree of `first` leaves with root
    `first_root` is a prefix of the tree of `second` leaves with root `second_root`."""
    if not 0 <= first <= second:
        raise ProofError(f"a tree of {first} leaves cannot be a prefix of one of {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError(f"two trees of {first} leaves with different roots")
        return
    if first == 0:
        if proof:
            raise ProofError("the empty tree needs no consistency proof")
        return
    path = list(proof)
    if first & (first - 1) == 0:
        path = [first_root, *path]
    if not path:
        raise ProofError("the consistency proof is empty")
    fn, sn = first - 1, second - 1
    while _lsb(fn):
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if _lsb(fn) or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not _lsb(fn) and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ProofError(f"the tree of {second} leaves does not extend the tree of {first} leaves with this root")


def new_nodes(index: int, leaf: Hash, sibling: NodeFn) -> list[tuple[int, int, Hash]]:
    """The nodes leaf `index` completes, the leaf first: it closes a parent at every level where
    the index's bit is 1, each from the stored left sibling (`sibling(level, index)`)."""
    out = [(0, index, leaf)]
    level, i, h = 0, index, leaf
    while _lsb(i):
        h = node_hash(sibling(level, i - 1), h)
        level, i = level + 1, i >> 1
        out.append((level, i, h))
    return out


def siblings_of(index: int) -> list[tuple[int, int]]:
    """The stored left siblings `new_nodes(index, ...)` reads."""
    out, level, i = [], 0, index
    while _lsb(i):
        out.append((level, i - 1))
        level, i = level + 1, i >> 1
    return out
