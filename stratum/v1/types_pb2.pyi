from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Gpu(_message.Message):
    __slots__ = ("index", "vendor", "model", "memory_mb", "uuid", "driver_version")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    index: int
    vendor: str
    model: str
    memory_mb: int
    uuid: str
    driver_version: str
    def __init__(self, index: _Optional[int] = ..., vendor: _Optional[str] = ..., model: _Optional[str] = ..., memory_mb: _Optional[int] = ..., uuid: _Optional[str] = ..., driver_version: _Optional[str] = ...) -> None: ...

class NetworkInterface(_message.Message):
    __slots__ = ("name", "mac", "addresses", "up", "mtu", "speed_mbps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    SPEED_MBPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    up: bool
    mtu: int
    speed_mbps: int
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., up: bool = ..., mtu: _Optional[int] = ..., speed_mbps: _Optional[int] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("cpu_cores", "cpu_physical_cores", "cpu_model", "arch", "cpu_mhz", "memory_mb", "disk_mb", "disk_free_mb", "gpus", "interfaces", "os", "os_release", "kernel", "hostname", "daemon_version", "binaries")
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    CPU_PHYSICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_MHZ_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_MB_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OS_RELEASE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DAEMON_VERSION_FIELD_NUMBER: _ClassVar[int]
    BINARIES_FIELD_NUMBER: _ClassVar[int]
    cpu_cores: int
    cpu_physical_cores: int
    cpu_model: str
    arch: str
    cpu_mhz: float
    memory_mb: int
    disk_mb: int
    disk_free_mb: int
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    interfaces: _containers.RepeatedCompositeFieldContainer[NetworkInterface]
    os: str
    os_release: str
    kernel: str
    hostname: str
    daemon_version: str
    binaries: _containers.RepeatedCompositeFieldContainer[Binary]
    def __init__(self, cpu_cores: _Optional[int] = ..., cpu_physical_cores: _Optional[int] = ..., cpu_model: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_mhz: _Optional[float] = ..., memory_mb: _Optional[int] = ..., disk_mb: _Optional[int] = ..., disk_free_mb: _Optional[int] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., interfaces: _Optional[_Iterable[_Union[NetworkInterface, _Mapping]]] = ..., os: _Optional[str] = ..., os_release: _Optional[str] = ..., kernel: _Optional[str] = ..., hostname: _Optional[str] = ..., daemon_version: _Optional[str] = ..., binaries: _Optional[_Iterable[_Union[Binary, _Mapping]]] = ...) -> None: ...

class Binary(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class Utilisation(_message.Message):
    __slots__ = ("cpu_percent", "memory_used_mb", "memory_percent", "disk_free_mb", "load1", "net_rx_bytes", "net_tx_bytes", "gpu_percent")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_MB_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    NET_RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NET_TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_used_mb: int
    memory_percent: float
    disk_free_mb: int
    load1: float
    net_rx_bytes: int
    net_tx_bytes: int
    gpu_percent: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_used_mb: _Optional[int] = ..., memory_percent: _Optional[float] = ..., disk_free_mb: _Optional[int] = ..., load1: _Optional[float] = ..., net_rx_bytes: _Optional[int] = ..., net_tx_bytes: _Optional[int] = ..., gpu_percent: _Optional[_Iterable[float]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "name", "tier", "labels", "state", "capabilities", "utilisation", "last_heartbeat", "created_at", "addresses", "join_token", "drain")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    tier: str
    labels: _containers.ScalarMap[str, str]
    state: str
    capabilities: Capabilities
    utilisation: Utilisation
    last_heartbeat: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    addresses: _containers.RepeatedScalarFieldContainer[str]
    join_token: str
    drain: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., utilisation: _Optional[_Union[Utilisation, _Mapping]] = ..., last_heartbeat: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., addresses: _Optional[_Iterable[str]] = ..., join_token: _Optional[str] = ..., drain: bool = ...) -> None: ...
