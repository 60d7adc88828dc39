from . import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ack(_message.Message):
    __slots__ = ("ok", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("token", "role", "public_key", "address", "http_address", "timestamp_ms", "signature", "avoid_sn", "tls_csr", "tls_csr_signature")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AVOID_SN_FIELD_NUMBER: _ClassVar[int]
    TLS_CSR_FIELD_NUMBER: _ClassVar[int]
    TLS_CSR_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    token: str
    role: str
    public_key: bytes
    address: str
    http_address: str
    timestamp_ms: int
    signature: bytes
    avoid_sn: str
    tls_csr: bytes
    tls_csr_signature: bytes
    def __init__(self, token: _Optional[str] = ..., role: _Optional[str] = ..., public_key: _Optional[bytes] = ..., address: _Optional[str] = ..., http_address: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., avoid_sn: _Optional[str] = ..., tls_csr: _Optional[bytes] = ..., tls_csr_signature: _Optional[bytes] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("node_id", "entry_node_id", "sn_node_id", "sn_address", "partition_index", "config_json", "height", "entry_http_address", "chain_id", "entry_public_key", "partition_size", "signature", "tls_certificate")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SN_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PARTITION_SIZE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    entry_node_id: str
    sn_node_id: str
    sn_address: str
    partition_index: int
    config_json: str
    height: int
    entry_http_address: str
    chain_id: bytes
    entry_public_key: bytes
    partition_size: int
    signature: bytes
    tls_certificate: bytes
    def __init__(self, node_id: _Optional[str] = ..., entry_node_id: _Optional[str] = ..., sn_node_id: _Optional[str] = ..., sn_address: _Optional[str] = ..., partition_index: _Optional[int] = ..., config_json: _Optional[str] = ..., height: _Optional[int] = ..., entry_http_address: _Optional[str] = ..., chain_id: _Optional[bytes] = ..., entry_public_key: _Optional[bytes] = ..., partition_size: _Optional[int] = ..., signature: _Optional[bytes] = ..., tls_certificate: _Optional[bytes] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node_id", "role", "address", "http_address", "alive_edges", "state", "counter", "signature")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_EDGES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    address: str
    http_address: str
    alive_edges: _containers.RepeatedScalarFieldContainer[str]
    state: str
    counter: int
    signature: bytes
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., address: _Optional[str] = ..., http_address: _Optional[str] = ..., alive_edges: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ..., counter: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class EdgeInfo(_message.Message):
    __slots__ = ("node_id", "public_key", "address", "http_address", "partition_index", "sn_node_id", "partition_size", "signature")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_INDEX_FIELD_NUMBER: _ClassVar[int]
    SN_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_SIZE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    public_key: bytes
    address: str
    http_address: str
    partition_index: int
    sn_node_id: str
    partition_size: int
    signature: bytes
    def __init__(self, node_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., address: _Optional[str] = ..., http_address: _Optional[str] = ..., partition_index: _Optional[int] = ..., sn_node_id: _Optional[str] = ..., partition_size: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("known", "edges", "entry_node_id", "entry_http_address")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    known: bool
    edges: _containers.RepeatedCompositeFieldContainer[EdgeInfo]
    entry_node_id: str
    entry_http_address: str
    def __init__(self, known: _Optional[bool] = ..., edges: _Optional[_Iterable[_Union[EdgeInfo, _Mapping]]] = ..., entry_node_id: _Optional[str] = ..., entry_http_address: _Optional[str] = ...) -> None: ...

class OpenRoundRequest(_message.Message):
    __slots__ = ("round", "version", "model_digest", "algorithm", "timeout_s", "participants", "sn_node_id", "issued_ms", "signature", "head")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    SN_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    round: int
    version: int
    model_digest: str
    algorithm: str
    timeout_s: float
    participants: _containers.RepeatedScalarFieldContainer[str]
    sn_node_id: str
    issued_ms: int
    signature: bytes
    head: _ledger_pb2.TreeHead
    def __init__(self, round: _Optional[int] = ..., version: _Optional[int] = ..., model_digest: _Optional[str] = ..., algorithm: _Optional[str] = ..., timeout_s: _Optional[float] = ..., participants: _Optional[_Iterable[str]] = ..., sn_node_id: _Optional[str] = ..., issued_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., head: _Optional[_Union[_ledger_pb2.TreeHead, _Mapping]] = ...) -> None: ...

class OpenRoundReply(_message.Message):
    __slots__ = ("ok", "edges", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    edges: int
    message: str
    def __init__(self, ok: _Optional[bool] = ..., edges: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class FetchModelRequest(_message.Message):
    __slots__ = ("version", "digest")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    version: int
    digest: str
    def __init__(self, version: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("data", "total_bytes", "digest")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    total_bytes: int
    digest: str
    def __init__(self, data: _Optional[bytes] = ..., total_bytes: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class UpdateHeader(_message.Message):
    __slots__ = ("node_id", "round", "version", "samples", "digest", "signature", "total_bytes", "train_loss", "train_seconds")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    round: int
    version: int
    samples: int
    digest: str
    signature: bytes
    total_bytes: int
    train_loss: float
    train_seconds: float
    def __init__(self, node_id: _Optional[str] = ..., round: _Optional[int] = ..., version: _Optional[int] = ..., samples: _Optional[int] = ..., digest: _Optional[str] = ..., signature: _Optional[bytes] = ..., total_bytes: _Optional[int] = ..., train_loss: _Optional[float] = ..., train_seconds: _Optional[float] = ...) -> None: ...

class UpdatePart(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: UpdateHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[UpdateHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("node_id", "reason")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    reason: str
    def __init__(self, node_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UsedUpdate(_message.Message):
    __slots__ = ("node_id", "digest", "samples", "train_loss", "train_seconds", "signature", "total_bytes")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    digest: str
    samples: int
    train_loss: float
    train_seconds: float
    signature: bytes
    total_bytes: int
    def __init__(self, node_id: _Optional[str] = ..., digest: _Optional[str] = ..., samples: _Optional[int] = ..., train_loss: _Optional[float] = ..., train_seconds: _Optional[float] = ..., signature: _Optional[bytes] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class AggregateHeader(_message.Message):
    __slots__ = ("sn_node_id", "round", "version", "samples", "used", "rejected", "total_bytes", "digest", "signature", "aggregator")
    SN_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_FIELD_NUMBER: _ClassVar[int]
    sn_node_id: str
    round: int
    version: int
    samples: int
    used: _containers.RepeatedCompositeFieldContainer[UsedUpdate]
    rejected: _containers.RepeatedCompositeFieldContainer[Rejection]
    total_bytes: int
    digest: str
    signature: bytes
    aggregator: str
    def __init__(self, sn_node_id: _Optional[str] = ..., round: _Optional[int] = ..., version: _Optional[int] = ..., samples: _Optional[int] = ..., used: _Optional[_Iterable[_Union[UsedUpdate, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ..., total_bytes: _Optional[int] = ..., digest: _Optional[str] = ..., signature: _Optional[bytes] = ..., aggregator: _Optional[str] = ...) -> None: ...

class AggregatePart(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: AggregateHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[AggregateHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("accepted", "message", "retain")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETAIN_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    message: str
    retain: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: _Optional[bool] = ..., message: _Optional[str] = ..., retain: _Optional[_Iterable[str]] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("version", "model_digest", "timeout_s", "algorithm", "sn_node_id", "issued_ms", "signature")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SN_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    version: int
    model_digest: str
    timeout_s: float
    algorithm: str
    sn_node_id: str
    issued_ms: int
    signature: bytes
    def __init__(self, version: _Optional[int] = ..., model_digest: _Optional[str] = ..., timeout_s: _Optional[float] = ..., algorithm: _Optional[str] = ..., sn_node_id: _Optional[str] = ..., issued_ms: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ClientEval(_message.Message):
    __slots__ = ("node_id", "sn", "correct", "total", "loss", "partition_index", "signature")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SN_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_INDEX_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    sn: str
    correct: int
    total: int
    loss: float
    partition_index: int
    signature: bytes
    def __init__(self, node_id: _Optional[str] = ..., sn: _Optional[str] = ..., correct: _Optional[int] = ..., total: _Optional[int] = ..., loss: _Optional[float] = ..., partition_index: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class EvaluateReply(_message.Message):
    __slots__ = ("clients", "failed")
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    clients: _containers.RepeatedCompositeFieldContainer[ClientEval]
    failed: _containers.RepeatedCompositeFieldContainer[Rejection]
    def __init__(self, clients: _Optional[_Iterable[_Union[ClientEval, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ...) -> None: ...

class RoundProofRequest(_message.Message):
    __slots__ = ("round", "node_id")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    round: int
    node_id: str
    def __init__(self, round: _Optional[int] = ..., node_id: _Optional[str] = ...) -> None: ...

class RoundProofReply(_message.Message):
    __slots__ = ("proof_json",)
    PROOF_JSON_FIELD_NUMBER: _ClassVar[int]
    proof_json: str
    def __init__(self, proof_json: _Optional[str] = ...) -> None: ...
