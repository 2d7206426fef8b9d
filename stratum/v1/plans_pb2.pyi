from stratum.v1 import apps_pb2 as _apps_pb2
from stratum.v1 import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValidateServiceRequest(_message.Message):
    __slots__ = ("service", "planned", "planned_apps")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    PLANNED_APPS_FIELD_NUMBER: _ClassVar[int]
    service: _models_pb2.ServiceSpec
    planned: _containers.RepeatedCompositeFieldContainer[_models_pb2.ServiceSpec]
    planned_apps: _containers.RepeatedCompositeFieldContainer[_apps_pb2.AppSpec]
    def __init__(self, service: _Optional[_Union[_models_pb2.ServiceSpec, _Mapping]] = ..., planned: _Optional[_Iterable[_Union[_models_pb2.ServiceSpec, _Mapping]]] = ..., planned_apps: _Optional[_Iterable[_Union[_apps_pb2.AppSpec, _Mapping]]] = ...) -> None: ...

class ValidateAppRequest(_message.Message):
    __slots__ = ("app", "planned", "planned_services")
    APP_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    PLANNED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    app: _apps_pb2.AppSpec
    planned: _containers.RepeatedCompositeFieldContainer[_apps_pb2.AppSpec]
    planned_services: _containers.RepeatedCompositeFieldContainer[_models_pb2.ServiceSpec]
    def __init__(self, app: _Optional[_Union[_apps_pb2.AppSpec, _Mapping]] = ..., planned: _Optional[_Iterable[_Union[_apps_pb2.AppSpec, _Mapping]]] = ..., planned_services: _Optional[_Iterable[_Union[_models_pb2.ServiceSpec, _Mapping]]] = ...) -> None: ...
