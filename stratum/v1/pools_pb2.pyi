from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CloudPoolSpec(_message.Message):
    __slots__ = ("name", "driver", "region", "size", "image", "credentials", "driver_options", "min_nodes", "max_nodes", "tier", "labels", "prices", "idle_grace_s", "server")
    class DriverOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PricesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_NODES_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    IDLE_GRACE_S_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    name: str
    driver: str
    region: str
    size: str
    image: str
    credentials: str
    driver_options: _containers.ScalarMap[str, str]
    min_nodes: int
    max_nodes: int
    tier: str
    labels: _containers.ScalarMap[str, str]
    prices: _containers.ScalarMap[str, float]
    idle_grace_s: float
    server: str
    def __init__(self, name: _Optional[str] = ..., driver: _Optional[str] = ..., region: _Optional[str] = ..., size: _Optional[str] = ..., image: _Optional[str] = ..., credentials: _Optional[str] = ..., driver_options: _Optional[_Mapping[str, str]] = ..., min_nodes: _Optional[int] = ..., max_nodes: _Optional[int] = ..., tier: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., prices: _Optional[_Mapping[str, float]] = ..., idle_grace_s: _Optional[float] = ..., server: _Optional[str] = ...) -> None: ...

class PoolVm(_message.Message):
    __slots__ = ("name", "token", "instance_id", "state", "node_id", "message", "requested_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    token: str
    instance_id: str
    state: str
    node_id: str
    message: str
    requested_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., token: _Optional[str] = ..., instance_id: _Optional[str] = ..., state: _Optional[str] = ..., node_id: _Optional[str] = ..., message: _Optional[str] = ..., requested_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CloudPool(_message.Message):
    __slots__ = ("spec", "vms", "state", "message", "cpu_cores", "memory_mb", "price_per_hour", "joined")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    spec: CloudPoolSpec
    vms: _containers.RepeatedCompositeFieldContainer[PoolVm]
    state: str
    message: str
    cpu_cores: float
    memory_mb: int
    price_per_hour: float
    joined: int
    def __init__(self, spec: _Optional[_Union[CloudPoolSpec, _Mapping]] = ..., vms: _Optional[_Iterable[_Union[PoolVm, _Mapping]]] = ..., state: _Optional[str] = ..., message: _Optional[str] = ..., cpu_cores: _Optional[float] = ..., memory_mb: _Optional[int] = ..., price_per_hour: _Optional[float] = ..., joined: _Optional[int] = ...) -> None: ...

class GetCloudPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCloudPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCloudPoolResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
