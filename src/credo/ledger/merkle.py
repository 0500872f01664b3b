"""RFC 9162 (Certificate Transparency v2, section 2.1) Merkle tree hashing.

The ledger is an append-only list of records; record ``seq`` (1-based) is
leaf index ``seq - 1``, and its leaf hash is
``leaf_hash(canonical_bytes(record))`` (see :mod:`credo.ledger.canonical`).
Everything here works on those 32-byte leaf hashes, never on records.

Hashes (SHA-256 throughout):

* empty tree: ``EMPTY_ROOT = SHA-256("")``
* leaf: ``leaf_hash(d) = SHA-256(0x00 || d)``
* interior node: ``node_hash(l, r) = SHA-256(0x01 || l || r)``
* a tree of ``n > 1`` leaves splits at ``k``, the largest power of two below
  ``n``: ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

Worked example, used by every docstring below: five leaf hashes
``a b c d e`` (leaf indices 0..4)::

               root5 = H(k, e)
              /               \\
        k = H(i, j)             e        i = H(a, b)  = subtree(0, 2)
        /         \\                      j = H(c, d)  = subtree(2, 4)
   i = H(a, b)   j = H(c, d)             k = H(i, j)  = subtree(0, 4)
    /    \\        /    \\                 e            = subtree(4, 5)
   a      b      c      d

* inclusion proof of ``c`` (index 2) in size 5: ``[d, i, e]``
* consistency proof from size 3 (``root3 = H(i, c)``) to 5: ``[c, d, i, e]``
* compact range (frontier) at size 5: ``[k, e]``; ``root5 = H(k, e)``.

Storage: proofs only ever need *perfect* subtrees, ranges ``[start, end)``
with ``end - start = 2**level`` and ``start`` a multiple of it: the node at
``(level, index = start >> level)``. :meth:`CompactRange.append_with_nodes`
reports each such node as it is completed, so a store can keep them (a
table keyed by ``(level, index)``) and answer :data:`SubtreeHasher` calls
with one lookup each; proofs then cost O(log n) lookups, not a rehash of
the log. :class:`SubtreeCache` is the in-memory version over a list of leaf
hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from credo.ledger.canonical import leaf_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "Node",
    "SubtreeCache",
    "SubtreeHasher",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

#: Root of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``subtree(start, end)`` returns the hash of the perfect subtree over leaf
#: indices ``[start, end)``: ``end - start`` is a power of two and ``start``
#: a multiple of it. Proof functions call nothing else.
SubtreeHasher = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _is_perfect(start: int, end: int) -> bool:
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash (RFC 9162 MTH) of a list of leaf hashes.

    Computed level by level: pair neighbours, carry an odd last node up
    unchanged. That is the same tree as the RFC's "split at the largest power
    of two below n" recursion, without the recursion.

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> root([a, b, c, d, e]) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)), e)
    True
    >>> root([]) == EMPTY_ROOT
    True
    """
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class SubtreeCache:
    """In-memory :data:`SubtreeHasher` over a list of leaf hashes.

    Interior node hashes are memoised by ``(level, index)``; a perfect
    subtree never changes once its leaves exist, so the cache stays valid
    while ``leaves`` only grows (never edit earlier entries).

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> subtree = SubtreeCache([a, b, c, d, e])
    >>> subtree(0, 2) == node_hash(a, b) and subtree(4, 5) == e
    True
    >>> subtree(1, 3)
    Traceback (most recent call last):
    ...
    ValueError: [1, 3) is not a perfect subtree range
    """

    __slots__ = ("_leaves", "_nodes")

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves = leaves
        self._nodes: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def __call__(self, start: int, end: int) -> bytes:
        if not _is_perfect(start, end):
            raise ValueError(f"[{start}, {end}) is not a perfect subtree range")
        if end > len(self._leaves):
            raise ValueError(f"[{start}, {end}) reaches past {len(self._leaves)} leaves")
        return self._node((end - start).bit_length() - 1, start)

    def _node(self, level: int, start: int) -> bytes:
        if level == 0:
            return self._leaves[start]
        key = (level, start >> level)
        cached = self._nodes.get(key)
        if cached is None:
            half = 1 << (level - 1)
            cached = node_hash(self._node(level - 1, start), self._node(level - 1, start + half))
            self._nodes[key] = cached
        return cached


def _subtree_hasher(source: Sequence[bytes] | SubtreeHasher, size: int) -> SubtreeHasher:
    if isinstance(source, Sequence):
        if size > len(source):
            raise ValueError(f"tree size {size} exceeds the {len(source)} leaves given")
        return SubtreeCache(source)
    return source


def _perfect_pieces(start: int, end: int) -> Iterable[tuple[int, int]]:
    # Left to right, the largest power of two first: exactly the RFC's split
    # points, so each piece is a node of the tree (given an aligned start).
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        yield start, start + size
        start += size


def _range_hash(subtree: SubtreeHasher, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)`` where ``start`` is aligned to a power of
    two at least ``end - start`` (every range a proof asks for is)."""
    pieces = [subtree(lo, hi) for lo, hi in _perfect_pieces(start, end)]
    acc = pieces[-1]
    for piece in reversed(pieces[:-1]):
        acc = node_hash(piece, acc)
    return acc


def root_from_subtrees(subtree: SubtreeHasher, size: int) -> bytes:
    """Root of the tree of the first ``size`` leaves, from at most
    ``log2(size) + 1`` perfect subtree hashes (for historical roots).

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> root_from_subtrees(SubtreeCache([a, b, c, d, e]), 3) == root([a, b, c])
    True
    """
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(subtree, 0, size)


def inclusion_proof(leaves: Sequence[bytes] | SubtreeHasher, index: int, size: int) -> list[bytes]:
    """Audit path (RFC 9162 2.1.3.1 ``PATH(index, D[size])``) for leaf ``index``.

    ``leaves`` is either the list of leaf hashes or a :data:`SubtreeHasher`
    (e.g. backed by stored nodes). The path lists sibling hashes from the
    leaf upwards. Worked example (module docstring): leaf ``c`` at index 2
    of 5 is proven by ``[d, i, e]``::

        c --H(c, d)--> j --H(i, j)--> k --H(k, e)--> root5

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> inclusion_proof([a, b, c, d, e], 2, 5) == [d, node_hash(a, b), e]
    True
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not inside a tree of size {size}")
    subtree = _subtree_hasher(leaves, size)
    path: list[bytes] = []
    start, end = 0, size
    # Walk down from the root; the RFC's recursion emits the deepest sibling
    # first, so the siblings collected on the way down are reversed at the end.
    while end - start > 1:
        mid = start + (1 << ((end - start - 1).bit_length() - 1))
        if index < mid:
            path.append(_range_hash(subtree, mid, end))
            end = mid
        else:
            path.append(subtree(start, mid))
            start = mid
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes] | SubtreeHasher, old_size: int, new_size: int) -> list[bytes]:
    """Consistency proof (RFC 9162 2.1.4.1 ``PROOF(old_size, D[new_size])``).

    Shows the tree of ``old_size`` leaves is a prefix of the tree of
    ``new_size`` leaves. Empty when ``old_size`` is 0 or equals ``new_size``
    (nothing to prove). Worked example (module docstring): from 3 to 5 it is
    ``[c, d, i, e]``: ``H(i, c)`` rebuilds ``root3`` and
    ``H(H(i, H(c, d)), e)`` rebuilds ``root5`` from the same hashes.

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> consistency_proof([a, b, c, d, e], 3, 5) == [c, d, node_hash(a, b), e]
    True
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old_size <= new_size, got {old_size} and {new_size}")
    subtree = _subtree_hasher(leaves, new_size)
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end = 0, new_size
    # SUBPROOF(m, D[start:end], b) unrolled; m is old_size - start and b
    # becomes false once we step into a right subtree.
    whole_old_tree = True
    while old_size != end:
        k = 1 << ((end - start - 1).bit_length() - 1)
        if old_size <= start + k:
            proof.append(_range_hash(subtree, start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start += k
            whole_old_tree = False
    if not whole_old_tree:
        # Still on the left edge, this subtree *is* the old tree, whose root
        # the verifier already holds (old_size a power of two); anywhere else
        # the verifier needs its hash to start from.
        proof.append(_range_hash(subtree, start, end))
    proof.reverse()
    return proof


def _hashes_ok(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` put ``leaf_hash`` at ``index`` of the
    tree of ``size`` leaves whose root is ``root``?

    Returns False (never raises) for any malformed input: index outside the
    tree, a proof too long or too short, hashes that are not 32 bytes.

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> verify_inclusion(c, 2, 5, [d, node_hash(a, b), e], root([a, b, c, d, e]))
    True
    >>> verify_inclusion(c, 3, 5, [d, node_hash(a, b), e], root([a, b, c, d, e]))
    False
    """
    if not (_hashes_ok(leaf_hash, root, *proof) and 0 <= index < size):
        return False
    # Step numbers below are those of RFC 9162 section 2.1.3.2.
    # 2. fn is the leaf's index, sn the last index, both shifted up a level
    #    per proof element.
    fn, sn = index, size - 1
    # 3.
    r = leaf_hash
    # 4.
    for p in proof:
        # 4a. A proof longer than the path.
        if sn == 0:
            return False
        # 4b. Right child, or the last node on its level: sibling on the left.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # 4b.ii. Skip levels where this node had no right sibling (the
            # right edge of an unbalanced tree).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5. A proof shorter than the path leaves sn above 0.
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree (``old_size``, ``old_root``) a prefix of
    the tree (``new_size``, ``new_root``)?

    The RFC algorithm covers ``0 < old_size < new_size``. The edges follow
    RFC 9162 2.1.4.1 (the proof is then empty): equal sizes need equal roots,
    and the empty tree (whose root must be :data:`EMPTY_ROOT`) is a prefix of
    every tree. Returns False (never raises) for malformed input.

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> i = node_hash(a, b)
    >>> verify_consistency(3, 5, root([a, b, c]), root([a, b, c, d, e]), [c, d, i, e])
    True
    """
    if not (_hashes_ok(old_root, new_root, *proof) and 0 <= old_size <= new_size):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    # Step numbers below are those of RFC 9162 section 2.1.4.2.
    # 1.
    if not proof:
        return False
    path = list(proof)
    # 2. The old root is itself a node of the new tree; the prover left it out.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4. Start at the level of the largest perfect subtree ending the old tree.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr rebuilds the old root, sr the new one, from the same hashes.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # 6a.
        if sn == 0:
            return False
        # 6b. A left sibling: part of both trees.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # 6b.iii.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # A right sibling: only in the new tree.
        else:
            sr = node_hash(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7.
    return fr == old_root and sr == new_root and sn == 0


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree: leaves ``[index << level, (index + 1) << level)``."""

    level: int
    index: int
    hash: bytes

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


class CompactRange:
    """Frontier of the log: the O(log n) state needed to append and get roots.

    Holds one hash per set bit of ``size``: the perfect subtrees covering
    leaves ``[0, size)``, largest first. Appending merges equal-sized
    neighbours (like binary addition carries); the root folds the frontier
    from the right. Worked example (module docstring): after ``a..e`` the
    frontier is ``[k, e]`` and ``root() == H(k, e)``.

    >>> a, b, c, d, e = (leaf_hash(bytes([n])) for n in range(5))
    >>> frontier = CompactRange()
    >>> frontier.append(a)
    >>> [(n.level, n.index) for n in frontier.append_with_nodes(b)]
    [(0, 1), (1, 0)]
    >>> frontier.extend([c, d, e])
    >>> frontier.size, frontier.root() == root([a, b, c, d, e])
    (5, True)

    Persist :meth:`to_hashes` with :attr:`size` (or :meth:`to_bytes`) after a
    batch and restore with :meth:`from_hashes` (or :meth:`from_bytes`):

    >>> CompactRange.from_hashes(5, frontier.to_hashes()) == frontier
    True
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash."""
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order: on average one node hash per leaf.

        Kept free of per-leaf objects and calls because ingest and the
        full-ledger audit run every leaf through here: this loop is about
        five times faster than :meth:`extend_with_nodes`.
        """
        hashes, size, sha256 = self._hashes, self._size, _sha256
        try:
            for leaf in leaf_hashes:
                if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
                    raise ValueError("a leaf hash is 32 bytes")
                acc, index = leaf, size
                # Each trailing 1 bit of the old size is a left sibling to
                # merge with (a carry in binary addition).
                while index & 1:
                    acc = sha256(b"\x01" + hashes.pop() + acc).digest()
                    index >>= 1
                hashes.append(acc)
                size += 1
        finally:
            # Leaves before a refused one stay appended, and size agrees.
            self._size = size

    def append_with_nodes(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the perfect subtrees it completed.

        The list starts with the leaf itself (level 0) and goes up. A store
        that keeps every node reported here can serve :data:`SubtreeHasher`
        calls by lookup.
        """
        if not _hashes_ok(leaf_hash):
            raise ValueError("a leaf hash is 32 bytes")
        index = self._size
        completed = [Node(0, index, leaf_hash)]
        hashes = self._hashes
        level, acc = 0, leaf_hash
        while index & 1:
            acc = node_hash(hashes.pop(), acc)
            level += 1
            index >>= 1
            completed.append(Node(level, index, acc))
        hashes.append(acc)
        self._size += 1
        return completed

    def extend_with_nodes(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """Append leaf hashes; return every perfect subtree they completed."""
        completed: list[Node] = []
        for item in leaf_hashes:
            completed.extend(self.append_with_nodes(item))
        return completed

    def root(self) -> bytes:
        """Root of the tree of all leaves appended so far, in O(log n)."""
        if not self._hashes:
            return EMPTY_ROOT
        acc = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def to_hashes(self) -> list[bytes]:
        """The frontier hashes, largest subtree first (``size.bit_count()`` of them)."""
        return list(self._hashes)

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild from :attr:`size` and :meth:`to_hashes`; refuses a count or
        length that cannot belong to ``size``."""
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes, got {len(hashes)}")
        if not _hashes_ok(*hashes):
            raise ValueError("frontier hashes are 32 bytes each")
        frontier = cls()
        frontier._size = size
        frontier._hashes = [bytes(h) for h in hashes]
        return frontier

    @classmethod
    def from_subtrees(cls, subtree: SubtreeHasher, size: int) -> CompactRange:
        """The frontier at ``size`` read from stored perfect subtrees."""
        return cls.from_hashes(size, [subtree(lo, hi) for lo, hi in _perfect_pieces(0, size)])

    def to_bytes(self) -> bytes:
        """``size`` as 8 bytes big-endian, then the frontier hashes."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Inverse of :meth:`to_bytes`."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise ValueError(f"{len(data)} bytes is not a serialised frontier")
        body = data[8:]
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return cls.from_hashes(int.from_bytes(data[:8], "big"), hashes)

    def copy(self) -> CompactRange:
        return CompactRange.from_hashes(self._size, self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
