from google.protobuf import timestamp_pb2 as _timestamp_pb2
from stratum.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("join_token", "name", "tier", "labels", "csr_pem", "capabilities")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    join_token: str
    name: str
    tier: str
    labels: _containers.ScalarMap[str, str]
    csr_pem: str
    capabilities: _types_pb2.Capabilities
    def __init__(self, join_token: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., csr_pem: _Optional[str] = ..., capabilities: _Optional[_Union[_types_pb2.Capabilities, _Mapping]] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("node_id", "certificate_pem", "ca_pem", "node_agent_port", "tier", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    NODE_AGENT_PORT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    certificate_pem: str
    ca_pem: str
    node_agent_port: int
    tier: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[str] = ..., certificate_pem: _Optional[str] = ..., ca_pem: _Optional[str] = ..., node_agent_port: _Optional[int] = ..., tier: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "services")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    services: ServiceReport
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., services: _Optional[_Union[ServiceReport, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("capabilities", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    capabilities: _types_pb2.Capabilities
    labels: _containers.ScalarMap[str, str]
    def __init__(self, capabilities: _Optional[_Union[_types_pb2.Capabilities, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("seq", "sent_at", "utilisation")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sent_at: _timestamp_pb2.Timestamp
    utilisation: _types_pb2.Utilisation
    def __init__(self, seq: _Optional[int] = ..., sent_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., utilisation: _Optional[_Union[_types_pb2.Utilisation, _Mapping]] = ...) -> None: ...

class ControlMessage(_message.Message):
    __slots__ = ("welcome", "heartbeat_ack", "assignments")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    heartbeat_ack: HeartbeatAck
    assignments: Assignments
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("node_id", "heartbeat_interval_s")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    heartbeat_interval_s: float
    def __init__(self, node_id: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("generation", "services")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    generation: int
    services: _containers.RepeatedCompositeFieldContainer[ServiceAssignment]
    def __init__(self, generation: _Optional[int] = ..., services: _Optional[_Iterable[_Union[ServiceAssignment, _Mapping]]] = ...) -> None: ...

class ServiceAssignment(_message.Message):
    __slots__ = ("service", "version", "bento_digest", "bento_size_bytes", "replicas", "workers", "routing", "cpu_limit", "memory_limit_mb")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BENTO_DIGEST_FIELD_NUMBER: _ClassVar[int]
    BENTO_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_MB_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    bento_digest: str
    bento_size_bytes: int
    replicas: int
    workers: int
    routing: RoutingPlan
    cpu_limit: float
    memory_limit_mb: int
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., bento_digest: _Optional[str] = ..., bento_size_bytes: _Optional[int] = ..., replicas: _Optional[int] = ..., workers: _Optional[int] = ..., routing: _Optional[_Union[RoutingPlan, _Mapping]] = ..., cpu_limit: _Optional[float] = ..., memory_limit_mb: _Optional[int] = ...) -> None: ...

class RoutingPlan(_message.Message):
    __slots__ = ("mode", "slo_p95_ms", "on_demand_replicas", "idle_stop_s", "ood_share_max", "forms", "peers", "input_bounds_json")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SLO_P95_MS_FIELD_NUMBER: _ClassVar[int]
    ON_DEMAND_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    IDLE_STOP_S_FIELD_NUMBER: _ClassVar[int]
    OOD_SHARE_MAX_FIELD_NUMBER: _ClassVar[int]
    FORMS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    INPUT_BOUNDS_JSON_FIELD_NUMBER: _ClassVar[int]
    mode: str
    slo_p95_ms: float
    on_demand_replicas: int
    idle_stop_s: float
    ood_share_max: float
    forms: _containers.RepeatedCompositeFieldContainer[FormProfile]
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    input_bounds_json: str
    def __init__(self, mode: _Optional[str] = ..., slo_p95_ms: _Optional[float] = ..., on_demand_replicas: _Optional[int] = ..., idle_stop_s: _Optional[float] = ..., ood_share_max: _Optional[float] = ..., forms: _Optional[_Iterable[_Union[FormProfile, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., input_bounds_json: _Optional[str] = ...) -> None: ...

class FormProfile(_message.Message):
    __slots__ = ("form", "p95_ms", "cold_start_s", "max_input_bytes", "capacity_rps", "cost_per_hour")
    FORM_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    COLD_START_S_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_RPS_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    form: str
    p95_ms: float
    cold_start_s: float
    max_input_bytes: int
    capacity_rps: float
    cost_per_hour: float
    def __init__(self, form: _Optional[str] = ..., p95_ms: _Optional[float] = ..., cold_start_s: _Optional[float] = ..., max_input_bytes: _Optional[int] = ..., capacity_rps: _Optional[float] = ..., cost_per_hour: _Optional[float] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("node_name", "endpoint", "tier")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    endpoint: str
    tier: str
    def __init__(self, node_name: _Optional[str] = ..., endpoint: _Optional[str] = ..., tier: _Optional[str] = ...) -> None: ...

class ServiceReport(_message.Message):
    __slots__ = ("generation", "services")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    generation: int
    services: _containers.RepeatedCompositeFieldContainer[ServiceStatus]
    def __init__(self, generation: _Optional[int] = ..., services: _Optional[_Iterable[_Union[ServiceStatus, _Mapping]]] = ...) -> None: ...

class ServiceStatus(_message.Message):
    __slots__ = ("service", "version", "endpoint", "ready_replicas", "state", "error", "samples_json", "requests", "failures", "minutes")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    endpoint: str
    ready_replicas: int
    state: str
    error: str
    samples_json: str
    requests: int
    failures: int
    minutes: _containers.RepeatedCompositeFieldContainer[MinuteSample]
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., endpoint: _Optional[str] = ..., ready_replicas: _Optional[int] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., samples_json: _Optional[str] = ..., requests: _Optional[int] = ..., failures: _Optional[int] = ..., minutes: _Optional[_Iterable[_Union[MinuteSample, _Mapping]]] = ...) -> None: ...

class MinuteSample(_message.Message):
    __slots__ = ("minute", "requests", "failures", "max_in_flight", "latency_buckets", "latency_sum_ms")
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SUM_MS_FIELD_NUMBER: _ClassVar[int]
    minute: int
    requests: int
    failures: int
    max_in_flight: int
    latency_buckets: _containers.RepeatedScalarFieldContainer[int]
    latency_sum_ms: float
    def __init__(self, minute: _Optional[int] = ..., requests: _Optional[int] = ..., failures: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., latency_buckets: _Optional[_Iterable[int]] = ..., latency_sum_ms: _Optional[float] = ...) -> None: ...

class FetchBentoRequest(_message.Message):
    __slots__ = ("digest", "offset")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    digest: str
    offset: int
    def __init__(self, digest: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class BentoChunk(_message.Message):
    __slots__ = ("offset", "data", "size")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    size: int
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...
