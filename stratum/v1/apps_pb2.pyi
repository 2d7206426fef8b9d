from google.protobuf import timestamp_pb2 as _timestamp_pb2
from stratum.v1 import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppSpec(_message.Message):
    __slots__ = ("name", "kind", "artifact", "command", "args", "env", "secret_env", "ports", "health", "restart", "schedule", "requirements", "placement", "connects_to", "outputs", "count", "kill_timeout_s")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SecretEnvEntry(_message.Message):
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
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SECRET_ENV_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CONNECTS_TO_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    KILL_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    artifact: Artifact
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    secret_env: _containers.ScalarMap[str, str]
    ports: _containers.ScalarMap[str, int]
    health: HealthCheck
    restart: RestartPolicy
    schedule: Schedule
    requirements: _models_pb2.Requirements
    placement: _models_pb2.PlacementPreferences
    connects_to: _containers.RepeatedScalarFieldContainer[str]
    outputs: AppOutputs
    count: int
    kill_timeout_s: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., artifact: _Optional[_Union[Artifact, _Mapping]] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., secret_env: _Optional[_Mapping[str, str]] = ..., ports: _Optional[_Mapping[str, int]] = ..., health: _Optional[_Union[HealthCheck, _Mapping]] = ..., restart: _Optional[_Union[RestartPolicy, _Mapping]] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., requirements: _Optional[_Union[_models_pb2.Requirements, _Mapping]] = ..., placement: _Optional[_Union[_models_pb2.PlacementPreferences, _Mapping]] = ..., connects_to: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Union[AppOutputs, _Mapping]] = ..., count: _Optional[int] = ..., kill_timeout_s: _Optional[float] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("sha256", "size", "name", "directory")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    name: str
    directory: bool
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ..., name: _Optional[str] = ..., directory: bool = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("http", "port", "tcp", "exec", "interval_s", "timeout_s", "grace_s", "failures")
    HTTP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    EXEC_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    GRACE_S_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    http: str
    port: str
    tcp: str
    exec: _containers.RepeatedScalarFieldContainer[str]
    interval_s: float
    timeout_s: float
    grace_s: float
    failures: int
    def __init__(self, http: _Optional[str] = ..., port: _Optional[str] = ..., tcp: _Optional[str] = ..., exec: _Optional[_Iterable[str]] = ..., interval_s: _Optional[float] = ..., timeout_s: _Optional[float] = ..., grace_s: _Optional[float] = ..., failures: _Optional[int] = ...) -> None: ...

class RestartPolicy(_message.Message):
    __slots__ = ("attempts", "interval_s", "delay_s", "mode")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    DELAY_S_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    interval_s: float
    delay_s: float
    mode: str
    def __init__(self, attempts: _Optional[int] = ..., interval_s: _Optional[float] = ..., delay_s: _Optional[float] = ..., mode: _Optional[str] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("cron", "time_zone", "prohibit_overlap")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    PROHIBIT_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    cron: str
    time_zone: str
    prohibit_overlap: bool
    def __init__(self, cron: _Optional[str] = ..., time_zone: _Optional[str] = ..., prohibit_overlap: bool = ...) -> None: ...

class AppOutputs(_message.Message):
    __slots__ = ("dataset", "mode")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    mode: str
    def __init__(self, dataset: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class AppInstance(_message.Message):
    __slots__ = ("index", "node_id", "node_name", "state", "restarts", "endpoints", "error")
    class EndpointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    node_id: str
    node_name: str
    state: str
    restarts: int
    endpoints: _containers.ScalarMap[str, str]
    error: str
    def __init__(self, index: _Optional[int] = ..., node_id: _Optional[str] = ..., node_name: _Optional[str] = ..., state: _Optional[str] = ..., restarts: _Optional[int] = ..., endpoints: _Optional[_Mapping[str, str]] = ..., error: _Optional[str] = ...) -> None: ...

class AppRun(_message.Message):
    __slots__ = ("id", "number", "state", "node_name", "scheduled_for", "started_at", "ended_at", "exit_code", "attempts", "log_tail", "dataset_version", "message", "spec_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    state: str
    node_name: str
    scheduled_for: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    exit_code: int
    attempts: int
    log_tail: str
    dataset_version: int
    message: str
    spec_version: int
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., state: _Optional[str] = ..., node_name: _Optional[str] = ..., scheduled_for: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., attempts: _Optional[int] = ..., log_tail: _Optional[str] = ..., dataset_version: _Optional[int] = ..., message: _Optional[str] = ..., spec_version: _Optional[int] = ...) -> None: ...

class App(_message.Message):
    __slots__ = ("spec", "state", "message", "instances", "endpoints", "spec_version", "last_run", "next_run_at")
    class EndpointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Endpoints
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Endpoints, _Mapping]] = ...) -> None: ...
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    spec: AppSpec
    state: str
    message: str
    instances: _containers.RepeatedCompositeFieldContainer[AppInstance]
    endpoints: _containers.MessageMap[str, Endpoints]
    spec_version: int
    last_run: AppRun
    next_run_at: _timestamp_pb2.Timestamp
    def __init__(self, spec: _Optional[_Union[AppSpec, _Mapping]] = ..., state: _Optional[str] = ..., message: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[AppInstance, _Mapping]]] = ..., endpoints: _Optional[_Mapping[str, Endpoints]] = ..., spec_version: _Optional[int] = ..., last_run: _Optional[_Union[AppRun, _Mapping]] = ..., next_run_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Endpoints(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class GetAppRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAppRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAppResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAppRunsRequest(_message.Message):
    __slots__ = ("name", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListAppRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[AppRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[AppRun, _Mapping]]] = ...) -> None: ...

class RunAppNowRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StreamAppLogsRequest(_message.Message):
    __slots__ = ("name", "run", "instance", "follow", "tail_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    run: int
    instance: int
    follow: bool
    tail_bytes: int
    def __init__(self, name: _Optional[str] = ..., run: _Optional[int] = ..., instance: _Optional[int] = ..., follow: bool = ..., tail_bytes: _Optional[int] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("data", "node_name")
    DATA_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    node_name: str
    def __init__(self, data: _Optional[bytes] = ..., node_name: _Optional[str] = ...) -> None: ...
