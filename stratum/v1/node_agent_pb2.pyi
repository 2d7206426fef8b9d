from google.protobuf import timestamp_pb2 as _timestamp_pb2
from stratum.v1 import apps_pb2 as _apps_pb2
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
    __slots__ = ("hello", "heartbeat", "services", "log")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    services: ServiceReport
    log: LogData
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., services: _Optional[_Union[ServiceReport, _Mapping]] = ..., log: _Optional[_Union[LogData, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("welcome", "heartbeat_ack", "assignments", "log_request")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    LOG_REQUEST_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    heartbeat_ack: HeartbeatAck
    assignments: Assignments
    log_request: LogRequest
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ..., log_request: _Optional[_Union[LogRequest, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("node_id", "heartbeat_interval_s", "control_planes")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    CONTROL_PLANES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    heartbeat_interval_s: float
    control_planes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ..., control_planes: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("generation", "services", "apps", "dask_workers")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    APPS_FIELD_NUMBER: _ClassVar[int]
    DASK_WORKERS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    services: _containers.RepeatedCompositeFieldContainer[ServiceAssignment]
    apps: _containers.RepeatedCompositeFieldContainer[AppAssignment]
    dask_workers: _containers.RepeatedCompositeFieldContainer[DaskWorker]
    def __init__(self, generation: _Optional[int] = ..., services: _Optional[_Iterable[_Union[ServiceAssignment, _Mapping]]] = ..., apps: _Optional[_Iterable[_Union[AppAssignment, _Mapping]]] = ..., dask_workers: _Optional[_Iterable[_Union[DaskWorker, _Mapping]]] = ...) -> None: ...

class DaskWorker(_message.Message):
    __slots__ = ("training", "scheduler_host", "scheduler_port", "tls_cert_pem", "tls_key_pem")
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_HOST_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_PORT_FIELD_NUMBER: _ClassVar[int]
    TLS_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    TLS_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    training: str
    scheduler_host: str
    scheduler_port: int
    tls_cert_pem: str
    tls_key_pem: str
    def __init__(self, training: _Optional[str] = ..., scheduler_host: _Optional[str] = ..., scheduler_port: _Optional[int] = ..., tls_cert_pem: _Optional[str] = ..., tls_key_pem: _Optional[str] = ...) -> None: ...

class ServiceAssignment(_message.Message):
    __slots__ = ("service", "version", "bento_digest", "bento_size_bytes", "replicas", "workers", "routing", "cpu_limit", "memory_limit_mb", "env")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BENTO_DIGEST_FIELD_NUMBER: _ClassVar[int]
    BENTO_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_MB_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    bento_digest: str
    bento_size_bytes: int
    replicas: int
    workers: int
    routing: RoutingPlan
    cpu_limit: float
    memory_limit_mb: int
    env: _containers.ScalarMap[str, str]
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., bento_digest: _Optional[str] = ..., bento_size_bytes: _Optional[int] = ..., replicas: _Optional[int] = ..., workers: _Optional[int] = ..., routing: _Optional[_Union[RoutingPlan, _Mapping]] = ..., cpu_limit: _Optional[float] = ..., memory_limit_mb: _Optional[int] = ..., env: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AppAssignment(_message.Message):
    __slots__ = ("app", "instance", "kind", "spec_version", "command", "args", "env", "ports", "artifact", "health", "restart", "cpu_limit", "memory_limit_mb", "kill_timeout_s", "runs")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PortsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    APP_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_MB_FIELD_NUMBER: _ClassVar[int]
    KILL_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    app: str
    instance: int
    kind: str
    spec_version: int
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    ports: _containers.ScalarMap[str, int]
    artifact: _apps_pb2.Artifact
    health: _apps_pb2.HealthCheck
    restart: _apps_pb2.RestartPolicy
    cpu_limit: float
    memory_limit_mb: int
    kill_timeout_s: float
    runs: _containers.RepeatedCompositeFieldContainer[RunOrder]
    def __init__(self, app: _Optional[str] = ..., instance: _Optional[int] = ..., kind: _Optional[str] = ..., spec_version: _Optional[int] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., ports: _Optional[_Mapping[str, int]] = ..., artifact: _Optional[_Union[_apps_pb2.Artifact, _Mapping]] = ..., health: _Optional[_Union[_apps_pb2.HealthCheck, _Mapping]] = ..., restart: _Optional[_Union[_apps_pb2.RestartPolicy, _Mapping]] = ..., cpu_limit: _Optional[float] = ..., memory_limit_mb: _Optional[int] = ..., kill_timeout_s: _Optional[float] = ..., runs: _Optional[_Iterable[_Union[RunOrder, _Mapping]]] = ...) -> None: ...

class RunOrder(_message.Message):
    __slots__ = ("id", "number", "output_format")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    output_format: str
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., output_format: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("generation", "services", "apps", "minutes_taken_at")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    APPS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    generation: int
    services: _containers.RepeatedCompositeFieldContainer[ServiceStatus]
    apps: _containers.RepeatedCompositeFieldContainer[AppStatus]
    minutes_taken_at: float
    def __init__(self, generation: _Optional[int] = ..., services: _Optional[_Iterable[_Union[ServiceStatus, _Mapping]]] = ..., apps: _Optional[_Iterable[_Union[AppStatus, _Mapping]]] = ..., minutes_taken_at: _Optional[float] = ...) -> None: ...

class AppStatus(_message.Message):
    __slots__ = ("app", "instance", "spec_version", "state", "restarts", "endpoints", "error", "runs")
    class EndpointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APP_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    app: str
    instance: int
    spec_version: int
    state: str
    restarts: int
    endpoints: _containers.ScalarMap[str, str]
    error: str
    runs: _containers.RepeatedCompositeFieldContainer[RunStatus]
    def __init__(self, app: _Optional[str] = ..., instance: _Optional[int] = ..., spec_version: _Optional[int] = ..., state: _Optional[str] = ..., restarts: _Optional[int] = ..., endpoints: _Optional[_Mapping[str, str]] = ..., error: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[RunStatus, _Mapping]]] = ...) -> None: ...

class RunStatus(_message.Message):
    __slots__ = ("id", "state", "started_at", "ended_at", "exit_code", "attempts", "log_tail", "output_sha256", "output_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHA256_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: str
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    exit_code: int
    attempts: int
    log_tail: str
    output_sha256: str
    output_error: str
    def __init__(self, id: _Optional[str] = ..., state: _Optional[str] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., attempts: _Optional[int] = ..., log_tail: _Optional[str] = ..., output_sha256: _Optional[str] = ..., output_error: _Optional[str] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("request_id", "app", "instance", "run", "tail_bytes", "follow", "cancel")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    app: str
    instance: int
    run: int
    tail_bytes: int
    follow: bool
    cancel: bool
    def __init__(self, request_id: _Optional[int] = ..., app: _Optional[str] = ..., instance: _Optional[int] = ..., run: _Optional[int] = ..., tail_bytes: _Optional[int] = ..., follow: bool = ..., cancel: bool = ...) -> None: ...

class LogData(_message.Message):
    __slots__ = ("request_id", "data", "eof", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    data: bytes
    eof: bool
    error: str
    def __init__(self, request_id: _Optional[int] = ..., data: _Optional[bytes] = ..., eof: bool = ..., error: _Optional[str] = ...) -> None: ...

class UploadOutputRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadOutputHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadOutputHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadOutputHeader(_message.Message):
    __slots__ = ("run_id", "sha256", "size")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sha256: str
    size: int
    def __init__(self, run_id: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class UploadOutputResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

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
