"""The chain, independent of storage: canonical encoding, Merkle trees, blocks, rules.

``blocks`` (Block, BlockKind, payloads, build_block), ``merkle`` (RFC 6962),
``rules`` (ChainState, check_block) and ``errors`` are usable by any node.
"""
