from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Block(_message.Message):
    __slots__ = ("height", "kind", "prev_hash", "timestamp_ms", "producer", "payload_json", "hash", "signature")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    height: int
    kind: str
    prev_hash: bytes
    timestamp_ms: int
    producer: str
    payload_json: str
    hash: bytes
    signature: bytes
    def __init__(self, height: _Optional[int] = ..., kind: _Optional[str] = ..., prev_hash: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., producer: _Optional[str] = ..., payload_json: _Optional[str] = ..., hash: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class AppendReply(_message.Message):
    __slots__ = ("block",)
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    block: Block
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ...) -> None: ...

class TipRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TipReply(_message.Message):
    __slots__ = ("empty", "block")
    EMPTY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    empty: bool
    block: Block
    def __init__(self, empty: _Optional[bool] = ..., block: _Optional[_Union[Block, _Mapping]] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class RangeRequest(_message.Message):
    __slots__ = ("start", "limit")
    START_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    start: int
    limit: int
    def __init__(self, start: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("data", "digest", "size", "public_key", "signature")
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    digest: str
    size: int
    public_key: bytes
    signature: bytes
    def __init__(self, data: _Optional[bytes] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PutBlobReply(_message.Message):
    __slots__ = ("digest", "size")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class BlobRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class HasBlobReply(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: bool
    def __init__(self, present: _Optional[bool] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyReply(_message.Message):
    __slots__ = ("ok", "checked", "height", "reason")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checked: int
    height: int
    reason: str
    def __init__(self, ok: _Optional[bool] = ..., checked: _Optional[int] = ..., height: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class InclusionProofRequest(_message.Message):
    __slots__ = ("height", "update_digest")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    height: int
    update_digest: str
    def __init__(self, height: _Optional[int] = ..., update_digest: _Optional[str] = ...) -> None: ...

class InclusionProofReply(_message.Message):
    __slots__ = ("height", "index", "tree_size", "update_digest", "path", "root", "node_id", "samples")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    height: int
    index: int
    tree_size: int
    update_digest: str
    path: _containers.RepeatedScalarFieldContainer[bytes]
    root: bytes
    node_id: str
    samples: int
    def __init__(self, height: _Optional[int] = ..., index: _Optional[int] = ..., tree_size: _Optional[int] = ..., update_digest: _Optional[str] = ..., path: _Optional[_Iterable[bytes]] = ..., root: _Optional[bytes] = ..., node_id: _Optional[str] = ..., samples: _Optional[int] = ...) -> None: ...

class TreeHead(_message.Message):
    __slots__ = ("chain_id", "size", "root", "timestamp_ms", "signer", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: bytes
    size: int
    root: bytes
    timestamp_ms: int
    signer: str
    signature: bytes
    def __init__(self, chain_id: _Optional[bytes] = ..., size: _Optional[int] = ..., root: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., signer: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class TreeHeadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TreeHeadReply(_message.Message):
    __slots__ = ("empty", "head")
    EMPTY_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    empty: bool
    head: TreeHead
    def __init__(self, empty: _Optional[bool] = ..., head: _Optional[_Union[TreeHead, _Mapping]] = ...) -> None: ...

class ConsistencyRequest(_message.Message):
    __slots__ = ("from_size", "to_size")
    FROM_SIZE_FIELD_NUMBER: _ClassVar[int]
    TO_SIZE_FIELD_NUMBER: _ClassVar[int]
    from_size: int
    to_size: int
    def __init__(self, from_size: _Optional[int] = ..., to_size: _Optional[int] = ...) -> None: ...

class ConsistencyReply(_message.Message):
    __slots__ = ("from_size", "to_size", "proof")
    FROM_SIZE_FIELD_NUMBER: _ClassVar[int]
    TO_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    from_size: int
    to_size: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, from_size: _Optional[int] = ..., to_size: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...
