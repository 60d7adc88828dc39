"""The ledger's gRPC wire form: blocks as messages, errors as statuses.

A refusal travels as a gRPC status (each error class names its ``grpc_code``) with the
error's message as details and the error class name in the trailing metadata
``ERROR_METADATA``, so ``LedgerClient`` re-raises the same class.
"""

from __future__ import annotations

import json

from fedchain.shared.chain.blocks import Block, payload_text
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.payloads import parse_kind, payload_from_json
from fedchain.shared.chain.treehead import TreeHead, TreeHeadInvalid
from fedchain.shared.ledger.errors import InvalidBlock, InvalidTreeHead
from fedchain.shared.rpc import ledger_pb2

ERROR_METADATA = "fedchain-error"
"""Trailing-metadata key naming the ``LedgerError`` class of a refused call."""


def block_to_proto(block: Block) -> ledger_pb2.Block:
    """The gRPC message for ``block``."""
    return ledger_pb2.Block(
        height=block.height,
        kind=str(block.kind),
        prev_hash=block.prev_hash,
        timestamp_ms=block.timestamp_ms,
        producer=block.producer,
        payload_json=payload_text(block.payload),
        hash=block.hash,
        signature=block.signature,
    )


def block_from_proto(msg: ledger_pb2.Block) -> Block:
    """Parse a gRPC block; InvalidBlock with a one-line reason when it is malformed."""
    try:
        kind = parse_kind(msg.kind)
        try:
            data = json.loads(msg.payload_json)
        except json.JSONDecodeError as exc:
            raise InvalidBlock(f"block payload_json is not valid JSON: {exc.msg}") from None
        return Block(
            height=msg.height,
            kind=kind,
            prev_hash=bytes(msg.prev_hash),
            timestamp_ms=msg.timestamp_ms,
            producer=msg.producer,
            payload=payload_from_json(kind, data),
            hash=bytes(msg.hash),
            signature=bytes(msg.signature),
        )
    except ChainError as exc:
        raise InvalidBlock(f"malformed block: {exc}") from None


def head_to_proto(head: TreeHead) -> ledger_pb2.TreeHead:
    """The gRPC message for a signed tree head."""
    return ledger_pb2.TreeHead(
        chain_id=head.chain_id,
        size=head.size,
        root=head.root,
        timestamp_ms=head.timestamp_ms,
        signer=head.signer,
        signature=head.signature,
    )


def head_from_proto(msg: ledger_pb2.TreeHead) -> TreeHead:
    """Parse a gRPC tree head; InvalidTreeHead with a one-line reason when it is malformed."""
    try:
        return TreeHead.from_json(
            {
                "chain_id": bytes(msg.chain_id).hex(),
                "size": msg.size,
                "root": bytes(msg.root).hex(),
                "timestamp_ms": msg.timestamp_ms,
                "signer": msg.signer,
                "signature": bytes(msg.signature).hex(),
            }
        )
    except TreeHeadInvalid as exc:
        raise InvalidTreeHead(f"malformed tree head: {exc}") from None
