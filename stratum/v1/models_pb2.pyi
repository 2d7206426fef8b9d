from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Preprocessing(_message.Message):
    __slots__ = ("select", "drop_missing", "impute", "fill_value", "scale", "one_hot")
    SELECT_FIELD_NUMBER: _ClassVar[int]
    DROP_MISSING_FIELD_NUMBER: _ClassVar[int]
    IMPUTE_FIELD_NUMBER: _ClassVar[int]
    FILL_VALUE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    ONE_HOT_FIELD_NUMBER: _ClassVar[int]
    select: _containers.RepeatedScalarFieldContainer[str]
    drop_missing: bool
    impute: str
    fill_value: float
    scale: str
    one_hot: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, select: _Optional[_Iterable[str]] = ..., drop_missing: bool = ..., impute: _Optional[str] = ..., fill_value: _Optional[float] = ..., scale: _Optional[str] = ..., one_hot: _Optional[_Iterable[str]] = ...) -> None: ...

class Selection(_message.Message):
    __slots__ = ("metric", "cv_folds")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CV_FOLDS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    cv_folds: int
    def __init__(self, metric: _Optional[str] = ..., cv_folds: _Optional[int] = ...) -> None: ...

class Retrain(_message.Message):
    __slots__ = ("max_age", "on_drift", "drift_threshold", "min_samples", "on_new_data")
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    ON_DRIFT_FIELD_NUMBER: _ClassVar[int]
    DRIFT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ON_NEW_DATA_FIELD_NUMBER: _ClassVar[int]
    max_age: str
    on_drift: bool
    drift_threshold: float
    min_samples: int
    on_new_data: bool
    def __init__(self, max_age: _Optional[str] = ..., on_drift: bool = ..., drift_threshold: _Optional[float] = ..., min_samples: _Optional[int] = ..., on_new_data: bool = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("name", "dataset", "dataset_digest", "task", "target", "candidates", "grids", "preprocessing", "selection", "seed", "retrain", "pinned_version", "training")
    class GridsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Struct
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    GRIDS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RETRAIN_FIELD_NUMBER: _ClassVar[int]
    PINNED_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset: str
    dataset_digest: str
    task: str
    target: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    grids: _containers.MessageMap[str, _struct_pb2.Struct]
    preprocessing: Preprocessing
    selection: Selection
    seed: int
    retrain: Retrain
    pinned_version: str
    training: Training
    def __init__(self, name: _Optional[str] = ..., dataset: _Optional[str] = ..., dataset_digest: _Optional[str] = ..., task: _Optional[str] = ..., target: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ..., grids: _Optional[_Mapping[str, _struct_pb2.Struct]] = ..., preprocessing: _Optional[_Union[Preprocessing, _Mapping]] = ..., selection: _Optional[_Union[Selection, _Mapping]] = ..., seed: _Optional[int] = ..., retrain: _Optional[_Union[Retrain, _Mapping]] = ..., pinned_version: _Optional[str] = ..., training: _Optional[_Union[Training, _Mapping]] = ...) -> None: ...

class Training(_message.Message):
    __slots__ = ("engine", "workers")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    engine: str
    workers: TrainingWorkers
    def __init__(self, engine: _Optional[str] = ..., workers: _Optional[_Union[TrainingWorkers, _Mapping]] = ...) -> None: ...

class TrainingWorkers(_message.Message):
    __slots__ = ("tiers", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TIERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, tiers: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LeaderboardEntry(_message.Message):
    __slots__ = ("algorithm", "params_json", "score", "std", "error")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    params_json: str
    score: float
    std: float
    error: str
    def __init__(self, algorithm: _Optional[str] = ..., params_json: _Optional[str] = ..., score: _Optional[float] = ..., std: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("id", "kind", "target", "state", "done", "total", "message", "error", "created_at", "updated_at", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    target: str
    state: str
    done: int
    total: int
    message: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., target: _Optional[str] = ..., state: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "artifact_digest", "best_algorithm", "score", "leaderboard", "dataset_digest", "bento_digest", "bento_tag", "bento_size_bytes", "load_time_s", "memory_mb", "reason", "created_at", "p95_ms", "capacity_rps", "ms_per_kib", "sizes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    BEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    BENTO_DIGEST_FIELD_NUMBER: _ClassVar[int]
    BENTO_TAG_FIELD_NUMBER: _ClassVar[int]
    BENTO_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_RPS_FIELD_NUMBER: _ClassVar[int]
    MS_PER_KIB_FIELD_NUMBER: _ClassVar[int]
    SIZES_FIELD_NUMBER: _ClassVar[int]
    version: str
    artifact_digest: str
    best_algorithm: str
    score: float
    leaderboard: _containers.RepeatedCompositeFieldContainer[LeaderboardEntry]
    dataset_digest: str
    bento_digest: str
    bento_tag: str
    bento_size_bytes: int
    load_time_s: float
    memory_mb: int
    reason: str
    created_at: _timestamp_pb2.Timestamp
    p95_ms: float
    capacity_rps: float
    ms_per_kib: float
    sizes: _containers.RepeatedCompositeFieldContainer[ReplicaSize]
    def __init__(self, version: _Optional[str] = ..., artifact_digest: _Optional[str] = ..., best_algorithm: _Optional[str] = ..., score: _Optional[float] = ..., leaderboard: _Optional[_Iterable[_Union[LeaderboardEntry, _Mapping]]] = ..., dataset_digest: _Optional[str] = ..., bento_digest: _Optional[str] = ..., bento_tag: _Optional[str] = ..., bento_size_bytes: _Optional[int] = ..., load_time_s: _Optional[float] = ..., memory_mb: _Optional[int] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., p95_ms: _Optional[float] = ..., capacity_rps: _Optional[float] = ..., ms_per_kib: _Optional[float] = ..., sizes: _Optional[_Iterable[_Union[ReplicaSize, _Mapping]]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("spec", "state", "serving", "latest_version", "versions", "operation", "error")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    spec: ModelSpec
    state: str
    serving: ModelVersion
    latest_version: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    operation: Operation
    error: str
    def __init__(self, spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., state: _Optional[str] = ..., serving: _Optional[_Union[ModelVersion, _Mapping]] = ..., latest_version: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ..., operation: _Optional[_Union[Operation, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class ValidateModelResponse(_message.Message):
    __slots__ = ("columns",)
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, columns: _Optional[_Iterable[str]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RetrainModelRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetTrainingScriptRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class TrainingScript(_message.Message):
    __slots__ = ("filename", "source", "version")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    filename: str
    source: str
    version: str
    def __init__(self, filename: _Optional[str] = ..., source: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Requirements(_message.Message):
    __slots__ = ("cpu", "memory_mb", "tiers", "labels", "arch", "gpu", "gpu_model", "gpu_memory_mb", "zone", "data", "binaries")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    BINARIES_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    memory_mb: int
    tiers: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    arch: str
    gpu: int
    gpu_model: str
    gpu_memory_mb: int
    zone: str
    data: str
    binaries: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cpu: _Optional[float] = ..., memory_mb: _Optional[int] = ..., tiers: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., arch: _Optional[str] = ..., gpu: _Optional[int] = ..., gpu_model: _Optional[str] = ..., gpu_memory_mb: _Optional[int] = ..., zone: _Optional[str] = ..., data: _Optional[str] = ..., binaries: _Optional[_Iterable[str]] = ...) -> None: ...

class Slo(_message.Message):
    __slots__ = ("p95_latency_ms",)
    P95_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    p95_latency_ms: float
    def __init__(self, p95_latency_ms: _Optional[float] = ...) -> None: ...

class PlacementPreferences(_message.Message):
    __slots__ = ("pack", "prefer_tiers", "affinity", "anti_affinity")
    class AffinityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PACK_FIELD_NUMBER: _ClassVar[int]
    PREFER_TIERS_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_FIELD_NUMBER: _ClassVar[int]
    ANTI_AFFINITY_FIELD_NUMBER: _ClassVar[int]
    pack: bool
    prefer_tiers: _containers.RepeatedScalarFieldContainer[str]
    affinity: _containers.ScalarMap[str, str]
    anti_affinity: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pack: bool = ..., prefer_tiers: _Optional[_Iterable[str]] = ..., affinity: _Optional[_Mapping[str, str]] = ..., anti_affinity: _Optional[_Iterable[str]] = ...) -> None: ...

class Routing(_message.Message):
    __slots__ = ("mode", "on_demand_replicas", "idle_stop_s", "ood_share_max")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ON_DEMAND_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    IDLE_STOP_S_FIELD_NUMBER: _ClassVar[int]
    OOD_SHARE_MAX_FIELD_NUMBER: _ClassVar[int]
    mode: str
    on_demand_replicas: int
    idle_stop_s: float
    ood_share_max: float
    def __init__(self, mode: _Optional[str] = ..., on_demand_replicas: _Optional[int] = ..., idle_stop_s: _Optional[float] = ..., ood_share_max: _Optional[float] = ...) -> None: ...

class GetServiceMetricsRequest(_message.Message):
    __slots__ = ("name", "minutes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    minutes: int
    def __init__(self, name: _Optional[str] = ..., minutes: _Optional[int] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("minute", "requests", "failures", "p50_ms", "p95_ms", "p99_ms", "max_in_flight")
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    minute: int
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_in_flight: int
    def __init__(self, minute: _Optional[int] = ..., requests: _Optional[int] = ..., failures: _Optional[int] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_in_flight: _Optional[int] = ...) -> None: ...

class ServiceMetrics(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ...) -> None: ...

class ServiceSpec(_message.Message):
    __slots__ = ("name", "model", "replicas", "workers", "requirements", "slo", "placement", "routing", "scaling", "connects_to")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    SLO_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    SCALING_FIELD_NUMBER: _ClassVar[int]
    CONNECTS_TO_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    replicas: int
    workers: int
    requirements: Requirements
    slo: Slo
    placement: PlacementPreferences
    routing: Routing
    scaling: Scaling
    connects_to: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., replicas: _Optional[int] = ..., workers: _Optional[int] = ..., requirements: _Optional[_Union[Requirements, _Mapping]] = ..., slo: _Optional[_Union[Slo, _Mapping]] = ..., placement: _Optional[_Union[PlacementPreferences, _Mapping]] = ..., routing: _Optional[_Union[Routing, _Mapping]] = ..., scaling: _Optional[_Union[Scaling, _Mapping]] = ..., connects_to: _Optional[_Iterable[str]] = ...) -> None: ...

class Scaling(_message.Message):
    __slots__ = ("mode", "min", "max", "target_rpm", "vertical", "zero_after_s")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    TARGET_RPM_FIELD_NUMBER: _ClassVar[int]
    VERTICAL_FIELD_NUMBER: _ClassVar[int]
    ZERO_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    mode: str
    min: int
    max: int
    target_rpm: float
    vertical: bool
    zero_after_s: float
    def __init__(self, mode: _Optional[str] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., target_rpm: _Optional[float] = ..., vertical: bool = ..., zero_after_s: _Optional[float] = ...) -> None: ...

class ReplicaSize(_message.Message):
    __slots__ = ("cpu", "memory_mb", "workers", "capacity_rpm", "p95_ms")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_RPM_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    memory_mb: int
    workers: int
    capacity_rpm: float
    p95_ms: float
    def __init__(self, cpu: _Optional[float] = ..., memory_mb: _Optional[int] = ..., workers: _Optional[int] = ..., capacity_rpm: _Optional[float] = ..., p95_ms: _Optional[float] = ...) -> None: ...

class PlacementQuery(_message.Message):
    __slots__ = ("requirements", "replicas", "placement", "model")
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    requirements: Requirements
    replicas: int
    placement: PlacementPreferences
    model: str
    def __init__(self, requirements: _Optional[_Union[Requirements, _Mapping]] = ..., replicas: _Optional[int] = ..., placement: _Optional[_Union[PlacementPreferences, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class PlannedPlacement(_message.Message):
    __slots__ = ("node_id", "node_name", "replicas")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_name: str
    replicas: int
    def __init__(self, node_id: _Optional[str] = ..., node_name: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("node_name", "reason")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    reason: str
    def __init__(self, node_name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PlacementAnswer(_message.Message):
    __slots__ = ("placements", "rejected", "violations")
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    placements: _containers.RepeatedCompositeFieldContainer[PlannedPlacement]
    rejected: _containers.RepeatedCompositeFieldContainer[Rejection]
    violations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, placements: _Optional[_Iterable[_Union[PlannedPlacement, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ..., violations: _Optional[_Iterable[str]] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("node_id", "node_name", "replicas", "ready_replicas", "endpoint", "version", "error")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_name: str
    replicas: int
    ready_replicas: int
    endpoint: str
    version: str
    error: str
    def __init__(self, node_id: _Optional[str] = ..., node_name: _Optional[str] = ..., replicas: _Optional[int] = ..., ready_replicas: _Optional[int] = ..., endpoint: _Optional[str] = ..., version: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("spec", "state", "version", "bento_digest", "endpoints", "placements", "message", "replicas", "scaling_reason", "size")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BENTO_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SCALING_REASON_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    spec: ServiceSpec
    state: str
    version: str
    bento_digest: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    placements: _containers.RepeatedCompositeFieldContainer[Placement]
    message: str
    replicas: int
    scaling_reason: str
    size: ReplicaSize
    def __init__(self, spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., state: _Optional[str] = ..., version: _Optional[str] = ..., bento_digest: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ..., placements: _Optional[_Iterable[_Union[Placement, _Mapping]]] = ..., message: _Optional[str] = ..., replicas: _Optional[int] = ..., scaling_reason: _Optional[str] = ..., size: _Optional[_Union[ReplicaSize, _Mapping]] = ...) -> None: ...

class GetServiceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteServiceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteServiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
