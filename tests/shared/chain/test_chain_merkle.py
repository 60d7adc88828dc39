"""RFC 6962 Merkle trees against the transparency-dev/merkle reference vectors."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.shared.chain import merkle

LEAVES = [
    bytes.fromhex(x)
    for x in (
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
# Roots of the trees of the first n leaves (transparency-dev/merkle testonly.RootHashes).
ROOTS = [
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
# Level-0/1/2 node hashes of the 8-leaf tree (testonly.NodeHashes).
L0 = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
L1 = [
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
]
L2 = [
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_matches_reference_vectors(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size]


def test_leaf_hashes_match_reference() -> None:
    assert [merkle.leaf_hash(x).hex() for x in LEAVES] == L0


@pytest.mark.parametrize(
    ("index", "size", "expected"),
    [
        (0, 8, [L0[1], L1[1], L2[1]]),
        (5, 8, [L0[4], L1[3], L2[0]]),
        (2, 3, [L1[0]]),
        (0, 3, [L0[1], L0[2]]),
        (0, 1, []),
        (6, 7, [L1[2], L2[0]]),
    ],
)
def test_inclusion_proof_matches_reference_nodes(
    index: int, size: int, expected: list[str]
) -> None:
    proof = merkle.inclusion_proof(LEAVES[:size], index)
    assert [p.hex() for p in proof] == expected
    assert merkle.verify_inclusion(LEAVES[index], index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize("size", range(1, 9))
def test_every_leaf_proves_and_wrong_inputs_fail(size: int) -> None:
    root = bytes.fromhex(ROOTS[size])
    for index in range(size):
        proof = merkle.inclusion_proof(LEAVES[:size], index)
        assert merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
        assert not merkle.verify_inclusion(b"other", index, size, proof, root)
        assert not merkle.verify_inclusion(
            LEAVES[index], index, size, proof, merkle.root(LEAVES[: size - 1])
        )
        if size > 1:
            assert not merkle.verify_inclusion(LEAVES[index], (index + 1) % size, size, proof, root)
            assert not merkle.verify_inclusion(LEAVES[index], index, size, proof[:-1], root)
            flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + proof[1:]
            assert not merkle.verify_inclusion(LEAVES[index], index, size, flipped, root)


def test_out_of_range_index_is_refused() -> None:
    with pytest.raises(IndexError):
        merkle.inclusion_proof(LEAVES[:3], 3)
    assert not merkle.verify_inclusion(LEAVES[0], 3, 3, [], merkle.root(LEAVES[:3]))


def test_leaf_and_node_domains_differ() -> None:
    # A two-leaf root must not equal the leaf hash of the concatenated leaf hashes (second preimage).
    a, b = b"a", b"b"
    fake_leaf = merkle.leaf_hash(a) + merkle.leaf_hash(b)
    assert merkle.root([a, b]) != merkle.root([fake_leaf])
    assert (
        merkle.root([a, b])
        == hashlib.sha256(b"\x01" + merkle.leaf_hash(a) + merkle.leaf_hash(b)).digest()
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40), st.data())
def test_random_trees_prove_every_leaf(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    root = merkle.root(leaves)
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.verify_inclusion(leaves[index], index, len(leaves), proof, root)


# Consistency proofs of the 8-leaf reference tree (RFC 6962 section 2.1.2; the same values as
# transparency-dev/merkle's testonly consistency vectors), expressed with its node hashes.
CONSISTENCY = [
    (1, 1, []),
    (1, 8, [L0[1], L1[1], L2[1]]),
    (6, 8, [L1[2], L1[3], L2[0]]),
    (2, 5, [L1[1], L0[4]]),
    (4, 8, [L2[1]]),
    (3, 8, [L0[2], L0[3], L1[0], L2[1]]),
]


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_consistency_proof_matches_reference_nodes(old: int, new: int, expected: list[str]) -> None:
    proof = merkle.consistency_proof(LEAVES[:new], old)
    assert [p.hex() for p in proof] == expected
    assert merkle.verify_consistency(
        old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), proof
    )


def _hashes(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("new", range(0, 34))
def test_every_prefix_is_consistent_and_every_corruption_fails(new: int) -> None:
    leaves = _hashes(new)
    new_root = merkle.root(leaves)
    for old in range(0, new + 1):
        old_root = merkle.root(leaves[:old])
        proof = merkle.consistency_proof(leaves, old)
        assert merkle.verify_consistency(old, new, old_root, new_root, proof), (old, new)
        if not 0 < old < new:
            continue
        for i in range(len(proof)):  # each proof node flipped
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            assert not merkle.verify_consistency(old, new, old_root, new_root, bad)
        assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not merkle.verify_consistency(old, new, old_root, new_root, [*proof, new_root])
        assert not merkle.verify_consistency(old, new, new_root, new_root, proof)  # wrong old root
        assert not merkle.verify_consistency(old, new, old_root, old_root, proof)  # wrong new root
        other = merkle.root(_hashes(old + 1)[1:])  # a different history of the same size
        assert not merkle.verify_consistency(old, new, other, new_root, proof)
        assert not merkle.verify_consistency(
            old, new, old_root, new_root, [b"\x00" * 31] + proof[1:]
        )


def test_consistency_edge_cases() -> None:
    leaves = _hashes(5)
    r5 = merkle.root(leaves)
    assert merkle.verify_consistency(0, 5, merkle.root([]), r5, [])
    assert not merkle.verify_consistency(0, 5, merkle.root([]), r5, [r5])
    assert merkle.verify_consistency(5, 5, r5, r5, [])
    assert not merkle.verify_consistency(5, 5, r5, merkle.root(leaves[:4]), [])
    assert not merkle.verify_consistency(6, 5, r5, r5, [])  # a tree cannot shrink
    with pytest.raises(IndexError):
        merkle.consistency_proof(leaves, 6)
