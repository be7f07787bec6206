from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KIND_UNSPECIFIED: _ClassVar[Kind]
    FIT_INS: _ClassVar[Kind]
    EVALUATE_INS: _ClassVar[Kind]
    FIT_RES: _ClassVar[Kind]
    EVALUATE_RES: _ClassVar[Kind]
    ERROR: _ClassVar[Kind]
KIND_UNSPECIFIED: Kind
FIT_INS: Kind
EVALUATE_INS: Kind
FIT_RES: Kind
EVALUATE_RES: Kind
ERROR: Kind

class Scalar(_message.Message):
    __slots__ = ("b", "i", "d", "s")
    B_FIELD_NUMBER: _ClassVar[int]
    I_FIELD_NUMBER: _ClassVar[int]
    D_FIELD_NUMBER: _ClassVar[int]
    S_FIELD_NUMBER: _ClassVar[int]
    b: bool
    i: int
    d: float
    s: str
    def __init__(self, b: _Optional[bool] = ..., i: _Optional[int] = ..., d: _Optional[float] = ..., s: _Optional[str] = ...) -> None: ...

class ArrayMeta(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class TensorGroup(_message.Message):
    __slots__ = ("key", "arrays")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    key: str
    arrays: _containers.RepeatedCompositeFieldContainer[ArrayMeta]
    def __init__(self, key: _Optional[str] = ..., arrays: _Optional[_Iterable[_Union[ArrayMeta, _Mapping]]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("task_id", "kind", "groups", "config", "num_examples", "loss", "error", "payload_size")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Scalar
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Scalar, _Mapping]] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    kind: Kind
    groups: _containers.RepeatedCompositeFieldContainer[TensorGroup]
    config: _containers.MessageMap[str, Scalar]
    num_examples: int
    loss: float
    error: str
    payload_size: int
    def __init__(self, task_id: _Optional[str] = ..., kind: _Optional[_Union[Kind, str]] = ..., groups: _Optional[_Iterable[_Union[TensorGroup, _Mapping]]] = ..., config: _Optional[_Mapping[str, Scalar]] = ..., num_examples: _Optional[int] = ..., loss: _Optional[float] = ..., error: _Optional[str] = ..., payload_size: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: Header
    data: bytes
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version",)
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    def __init__(self, protocol_version: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("client_id", "heartbeat_s")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_S_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    heartbeat_s: float
    def __init__(self, client_id: _Optional[str] = ..., heartbeat_s: _Optional[float] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time",)
    TIME_FIELD_NUMBER: _ClassVar[int]
    time: float
    def __init__(self, time: _Optional[float] = ...) -> None: ...

class Bye(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ClientMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "frame")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    frame: Frame
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("welcome", "heartbeat", "frame", "bye")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    BYE_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    heartbeat: Heartbeat
    frame: Frame
    bye: Bye
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., bye: _Optional[_Union[Bye, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClientStatus(_message.Message):
    __slots__ = ("name", "last_heartbeat_s", "stage", "connected_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_S_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    last_heartbeat_s: float
    stage: str
    connected_s: float
    def __init__(self, name: _Optional[str] = ..., last_heartbeat_s: _Optional[float] = ..., stage: _Optional[str] = ..., connected_s: _Optional[float] = ...) -> None: ...

class RoundMetrics(_message.Message):
    __slots__ = ("round", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    round: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, round: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("round", "rounds", "completed_rounds", "stage", "clients", "metrics", "epsilon", "history", "uptime_s", "min_clients")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    MIN_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    round: int
    rounds: int
    completed_rounds: int
    stage: str
    clients: _containers.RepeatedCompositeFieldContainer[ClientStatus]
    metrics: _containers.ScalarMap[str, float]
    epsilon: float
    history: _containers.RepeatedCompositeFieldContainer[RoundMetrics]
    uptime_s: float
    min_clients: int
    def __init__(self, round: _Optional[int] = ..., rounds: _Optional[int] = ..., completed_rounds: _Optional[int] = ..., stage: _Optional[str] = ..., clients: _Optional[_Iterable[_Union[ClientStatus, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., epsilon: _Optional[float] = ..., history: _Optional[_Iterable[_Union[RoundMetrics, _Mapping]]] = ..., uptime_s: _Optional[float] = ..., min_clients: _Optional[int] = ...) -> None: ...
