"""RFC 9162 Merkle hashing: published vectors, exhaustive small trees, tampering."""

from __future__ import annotations

import doctest
import hashlib
from collections.abc import Callable, Sequence

import pytest

from credo.ledger import merkle
from credo.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    SubtreeCache,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_subtrees,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 reference test tree: certificate-transparency merkle_tree_test.cc,
# as carried by transparency-dev/merkle proof/verify_test.go (leaves, roots,
# inclusion and consistency vectors below are copied from that file).
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (leaf index, tree size, audit path); the Go file numbers leaves from 1.
INCLUSION_VECTORS = [
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
CONSISTENCY_VECTORS = [
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
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

VECTOR_HASHES = [leaf_hash(data) for data in LEAVES]
# Distinct leaf hashes for the exhaustive tests: leaf i is the hash of "i".
HASHES = [leaf_hash(str(i).encode()) for i in range(300)]
OTHER = hashlib.sha256(b"some other hash").digest()


def unhex(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# --- the RFC's recursive definitions, written out literally as an oracle ----


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- known answers ----------------------------------------------------------


def test_empty_tree_and_empty_leaf_known_answers() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_node_hash_prefixes_0x01() -> None:
    left, right = VECTOR_HASHES[0], VECTOR_HASHES[1]
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right).hex() == ROOTS[2]


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_roots_of_the_rfc6962_reference_tree(size: int) -> None:
    assert root(VECTOR_HASHES[:size]).hex() == ROOTS[size]
    assert root_from_subtrees(SubtreeCache(VECTOR_HASHES), size).hex() == ROOTS[size]
    frontier = CompactRange()
    frontier.extend(VECTOR_HASHES[:size])
    assert frontier.root().hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_published_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    assert inclusion_proof(VECTOR_HASHES, index, size) == unhex(path)
    root_hash = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(VECTOR_HASHES[index], index, size, unhex(path), root_hash)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_published_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    assert consistency_proof(VECTOR_HASHES, old, new) == unhex(path)
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, unhex(path))


def test_root_equals_the_rfc_recursion() -> None:
    for size in range(130):
        assert root(HASHES[:size]) == ref_mth(HASHES[:size]), size


# --- inclusion --------------------------------------------------------------


def test_every_leaf_of_every_tree_up_to_128_is_proven_and_verified() -> None:
    subtree = SubtreeCache(HASHES)
    for size in range(1, 129):
        tree_root = root(HASHES[:size])
        for index in range(size):
            proof = inclusion_proof(subtree, index, size)
            assert verify_inclusion(HASHES[index], index, size, proof, tree_root), (index, size)
    # The proofs are the RFC's PATH, not merely self-consistent.
    for size in (1, 2, 3, 7, 8, 9, 31, 64, 100, 128):
        for index in range(size):
            assert inclusion_proof(HASHES, index, size) == ref_path(index, HASHES[:size]), (index, size)


def _flipped(proof: list[bytes], i: int) -> list[bytes]:
    bad = list(proof)
    bad[i] = bytes([bad[i][0] ^ 0x08]) + bad[i][1:]
    return bad


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], tree_root: bytes, leaf: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    probes = [
        ("index - 1", (leaf, index - 1, size, proof, tree_root)),
        ("index + 1", (leaf, index + 1, size, proof, tree_root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, tree_root)),
        ("size * 2", (leaf, index, size * 2, proof, tree_root)),
        ("size // 2", (leaf, index, size // 2, proof, tree_root)),
        ("wrong leaf", (OTHER, index, size, proof, tree_root)),
        ("wrong root", (leaf, index, size, proof, OTHER)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("appended hash", (leaf, index, size, [*proof, OTHER], tree_root)),
        ("appended root", (leaf, index, size, [*proof, tree_root], tree_root)),
        ("prepended hash", (leaf, index, size, [OTHER, *proof], tree_root)),
        ("short hash", (leaf, index, size, [*proof, b""], tree_root)),
    ]
    for i in range(len(proof)):
        probes.append((f"bit flipped in proof[{i}]", (leaf, index, size, _flipped(proof, i), tree_root)))
        removed = proof[:i] + proof[i + 1 :]
        probes.append((f"proof[{i}] removed", (leaf, index, size, removed, tree_root)))
        inserted = [*proof[:i], OTHER, *proof[i:]]
        probes.append((f"hash inserted at {i}", (leaf, index, size, inserted, tree_root)))
    if len(proof) > 1:
        probes.append(("proof reversed", (leaf, index, size, proof[::-1], tree_root)))
    return probes


def test_corrupted_inclusion_proofs_are_all_refused() -> None:
    subtree = SubtreeCache(HASHES)
    accepted = []
    for size in range(1, 65):
        tree_root = root(HASHES[:size])
        for index in range(size):
            proof = inclusion_proof(subtree, index, size)
            for name, args in _inclusion_probes(index, size, proof, tree_root, HASHES[index]):
                if verify_inclusion(*args):
                    accepted.append((index, size, name))
    assert accepted == []


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (1, 1), (5, 5), (-1, 5), (0, -1), (6, 5)], ids=lambda v: str(v)
)
def test_inclusion_outside_the_tree_is_refused(index: int, size: int) -> None:
    assert not verify_inclusion(HASHES[0], index, size, [], HASHES[0])
    with pytest.raises(ValueError, match="not inside a tree"):
        inclusion_proof(HASHES, index, size)


def test_size_and_root_are_bound_by_the_checkpoint_not_by_the_proof() -> None:
    # RFC 9162 verification recomputes a root; where two sizes give the leaf
    # the same path (sizes 3 and 4 for leaf 0), the same proof and root pass
    # for both. Harmless because a verifier takes size and root together from
    # one signed checkpoint, never one from here and one from there.
    proof = inclusion_proof(HASHES, 0, 3)
    assert verify_inclusion(HASHES[0], 0, 4, proof, root(HASHES[:3]))
    assert not verify_inclusion(HASHES[0], 0, 4, proof, root(HASHES[:4]))
    proof = consistency_proof(HASHES, 1, 3)
    assert verify_consistency(1, 4, HASHES[0], root(HASHES[:3]), proof)
    assert not verify_consistency(1, 4, HASHES[0], root(HASHES[:4]), proof)


def test_inclusion_of_the_single_leaf_tree() -> None:
    assert inclusion_proof(HASHES, 0, 1) == []
    assert verify_inclusion(HASHES[0], 0, 1, [], HASHES[0])
    assert not verify_inclusion(HASHES[0], 0, 1, [], HASHES[1])
    assert not verify_inclusion(b"", 0, 1, [], b"")
    assert not verify_inclusion(HASHES[0][:31], 0, 1, [], HASHES[0][:31])


def test_inclusion_proof_needs_enough_leaves() -> None:
    with pytest.raises(ValueError, match="exceeds the 5 leaves"):
        inclusion_proof(HASHES[:5], 0, 6)


# --- consistency ------------------------------------------------------------


def test_consistency_for_every_pair_up_to_64() -> None:
    subtree = SubtreeCache(HASHES)
    roots = [root(HASHES[:n]) for n in range(65)]
    for new in range(65):
        for old in range(new + 1):
            proof = consistency_proof(subtree, old, new)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
            if 0 < old < new:
                assert proof == ref_subproof(old, HASHES[:new], True), (old, new)
            else:
                assert proof == []


def _consistency_probes(
    old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    probes = [
        ("old - 1", (old - 1, new, old_root, new_root, proof)),
        ("old + 1", (old + 1, new, old_root, new_root, proof)),
        ("old ^ 2", (old ^ 2, new, old_root, new_root, proof)),
        ("new * 2", (old, new * 2, old_root, new_root, proof)),
        ("new // 2", (old, new // 2, old_root, new_root, proof)),
        ("wrong old root", (old, new, OTHER, new_root, proof)),
        ("wrong new root", (old, new, old_root, OTHER, proof)),
        ("swapped roots", (old, new, new_root, old_root, proof)),
        ("empty proof", (old, new, old_root, new_root, [])),
        ("appended hash", (old, new, old_root, new_root, [*proof, OTHER])),
        ("appended old root", (old, new, old_root, new_root, [*proof, old_root])),
        ("appended new root", (old, new, old_root, new_root, [*proof, new_root])),
        ("prepended hash", (old, new, old_root, new_root, [OTHER, *proof])),
        ("prepended old root", (old, new, old_root, new_root, [old_root, *proof])),
        ("prepended new root", (old, new, old_root, new_root, [new_root, *proof])),
        ("prepended proof[0]", (old, new, old_root, new_root, [proof[0], *proof])),
        ("short hash", (old, new, old_root, new_root, [*proof, b""])),
    ]
    for i in range(len(proof)):
        probes.append((f"bit flipped in proof[{i}]", (old, new, old_root, new_root, _flipped(proof, i))))
        removed = proof[:i] + proof[i + 1 :]
        probes.append((f"proof[{i}] removed", (old, new, old_root, new_root, removed)))
        inserted = [*proof[:i], OTHER, *proof[i:]]
        probes.append((f"hash inserted at {i}", (old, new, old_root, new_root, inserted)))
    return probes


def test_corrupted_consistency_proofs_are_all_refused() -> None:
    subtree = SubtreeCache(HASHES)
    roots = [root(HASHES[:n]) for n in range(65)]
    accepted = []
    for new in range(2, 65):
        for old in range(1, new):
            proof = consistency_proof(subtree, old, new)
            for name, args in _consistency_probes(old, new, proof, roots[old], roots[new]):
                if verify_consistency(*args):
                    accepted.append((old, new, name))
    assert accepted == []


def test_consistency_edges() -> None:
    r3, r5 = root(HASHES[:3]), root(HASHES[:5])
    # Equal sizes: equal roots, empty proof.
    assert verify_consistency(3, 3, r3, r3, [])
    assert not verify_consistency(3, 3, r3, r5, [])
    assert not verify_consistency(3, 3, r3, r3, [r3])
    # The empty tree is a prefix of every tree, and its root is fixed.
    assert verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert not verify_consistency(0, 5, r3, r5, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, r5, [r5])
    # Shrinking is never consistent.
    assert not verify_consistency(5, 3, r5, r3, consistency_proof(HASHES, 3, 5))
    assert not verify_consistency(-1, 3, r3, r3, [])
    with pytest.raises(ValueError, match="old_size <= new_size"):
        consistency_proof(HASHES, 5, 3)
    with pytest.raises(ValueError, match="exceeds"):
        consistency_proof(HASHES[:5], 3, 6)


# --- compact range ----------------------------------------------------------


def test_compact_range_root_equals_root_for_every_size_to_300() -> None:
    frontier = CompactRange()
    assert frontier.root() == EMPTY_ROOT
    for size in range(301):
        expected = root(HASHES[:size])
        assert frontier.size == size
        assert frontier.root() == expected, size
        hashes = frontier.to_hashes()
        assert len(hashes) == size.bit_count()
        restored = CompactRange.from_hashes(size, hashes)
        assert restored == frontier and restored.root() == expected
        assert CompactRange.from_bytes(frontier.to_bytes()).root() == expected
        if size < 300:
            frontier.append(HASHES[size])


def test_restored_compact_range_keeps_appending_identically() -> None:
    for cut in (0, 1, 5, 64, 127, 200):
        whole = CompactRange()
        whole.extend(HASHES[:250])
        resumed = CompactRange.from_bytes(CompactRange().to_bytes())
        resumed.extend(HASHES[:cut])
        resumed = CompactRange.from_hashes(resumed.size, resumed.to_hashes())
        resumed.extend(HASHES[cut:250])
        assert resumed == whole and resumed.root() == root(HASHES[:250])


def test_compact_range_reports_every_perfect_subtree_it_completes() -> None:
    frontier = CompactRange()
    subtree = SubtreeCache(HASHES)
    nodes = frontier.extend_with_nodes(HASHES[:100])
    # Every perfect subtree inside [0, 100) is reported exactly once, correctly.
    expected = {(level, index) for level in range(7) for index in range(100 >> level)}
    assert sorted((n.level, n.index) for n in nodes) == sorted(expected)
    for n in nodes:
        assert n.hash == subtree(n.start, n.end)
    assert CompactRange.from_subtrees(subtree, 100) == frontier
    plain = CompactRange()
    plain.extend(HASHES[:100])
    assert plain == frontier


def test_compact_range_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append_with_nodes(b"short")
    frontier = CompactRange()
    with pytest.raises(ValueError, match="32 bytes"):
        frontier.extend([*HASHES[:5], b"short", HASHES[5]])
    # What came before the bad leaf is in, and the state is coherent.
    assert frontier.size == 5 and frontier.root() == root(HASHES[:5])
    with pytest.raises(ValueError, match="has 2 hashes, got 1"):
        CompactRange.from_hashes(5, [HASHES[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange.from_hashes(1, [b"short"])
    with pytest.raises(ValueError, match="not a serialised frontier"):
        CompactRange.from_bytes(b"\x00" * 9)
    with pytest.raises(ValueError, match="negative"):
        CompactRange.from_hashes(-1, [])


# --- proofs from stored nodes -----------------------------------------------


def _stored_node_hasher(size: int) -> tuple[Callable[[int, int], bytes], list[tuple[int, int]]]:
    """What a storage layer does: keep the nodes append_with_nodes() reports, look them up."""
    table = {(n.level, n.index): n.hash for n in CompactRange().extend_with_nodes(HASHES[:size])}
    calls: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        calls.append((start, end))
        level = (end - start).bit_length() - 1
        assert end - start == 1 << level and start % (1 << level) == 0, "not a perfect subtree"
        return table[(level, start >> level)]

    return subtree, calls


def test_proofs_from_stored_nodes_match_and_need_only_log_n_lookups() -> None:
    size = 300
    subtree, calls = _stored_node_hasher(size)
    tree_root = root(HASHES[:size])
    for index in (0, 1, 150, 255, 256, 299):
        calls.clear()
        proof = inclusion_proof(subtree, index, size)
        assert proof == inclusion_proof(HASHES, index, size)
        assert verify_inclusion(HASHES[index], index, size, proof, tree_root)
        assert len(calls) <= 2 * size.bit_length()
    for old in (1, 7, 128, 200, 299):
        calls.clear()
        proof = consistency_proof(subtree, old, size)
        assert proof == consistency_proof(HASHES, old, size)
        assert verify_consistency(old, size, root(HASHES[:old]), tree_root, proof)
        assert len(calls) <= 2 * size.bit_length()
    for old in range(size + 1):
        assert root_from_subtrees(subtree, old) == root(HASHES[:old])


def test_subtree_cache_serves_only_perfect_ranges() -> None:
    subtree = SubtreeCache(HASHES[:5])
    assert subtree(0, 4) == root(HASHES[:4])
    assert len(subtree) == 5
    for start, end in [(1, 3), (0, 3), (2, 2), (0, 8)]:
        with pytest.raises(ValueError):
            subtree(start, end)


def test_docstring_examples() -> None:
    assert doctest.testmod(merkle, raise_on_error=False).failed == 0
