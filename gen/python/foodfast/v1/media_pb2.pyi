import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageTargetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_TARGET_KIND_UNSPECIFIED: _ClassVar[ImageTargetKind]
    IMAGE_TARGET_KIND_MENU_ITEM: _ClassVar[ImageTargetKind]
    IMAGE_TARGET_KIND_RESTAURANT_COVER: _ClassVar[ImageTargetKind]
    IMAGE_TARGET_KIND_ACCOUNT_AVATAR: _ClassVar[ImageTargetKind]

class UploadJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_JOB_STATE_UNSPECIFIED: _ClassVar[UploadJobState]
    UPLOAD_JOB_STATE_QUEUED: _ClassVar[UploadJobState]
    UPLOAD_JOB_STATE_PROCESSING: _ClassVar[UploadJobState]
    UPLOAD_JOB_STATE_SUCCEEDED: _ClassVar[UploadJobState]
    UPLOAD_JOB_STATE_FAILED: _ClassVar[UploadJobState]
IMAGE_TARGET_KIND_UNSPECIFIED: ImageTargetKind
IMAGE_TARGET_KIND_MENU_ITEM: ImageTargetKind
IMAGE_TARGET_KIND_RESTAURANT_COVER: ImageTargetKind
IMAGE_TARGET_KIND_ACCOUNT_AVATAR: ImageTargetKind
UPLOAD_JOB_STATE_UNSPECIFIED: UploadJobState
UPLOAD_JOB_STATE_QUEUED: UploadJobState
UPLOAD_JOB_STATE_PROCESSING: UploadJobState
UPLOAD_JOB_STATE_SUCCEEDED: UploadJobState
UPLOAD_JOB_STATE_FAILED: UploadJobState

class UploadMetadata(_message.Message):
    __slots__ = ("target_kind", "target_id", "content_type", "total_size_bytes", "file_name", "sha256")
    TARGET_KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    target_kind: ImageTargetKind
    target_id: str
    content_type: str
    total_size_bytes: int
    file_name: str
    sha256: str
    def __init__(self, target_kind: _Optional[_Union[ImageTargetKind, str]] = ..., target_id: _Optional[str] = ..., content_type: _Optional[str] = ..., total_size_bytes: _Optional[int] = ..., file_name: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadImageRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadImageResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class UploadJob(_message.Message):
    __slots__ = ("job_id", "target_kind", "target_id", "state", "progress_percent", "result_url", "error", "poll_after", "created_at", "updated_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_URL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    POLL_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    target_kind: ImageTargetKind
    target_id: str
    state: UploadJobState
    progress_percent: int
    result_url: str
    error: str
    poll_after: _duration_pb2.Duration
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., target_kind: _Optional[_Union[ImageTargetKind, str]] = ..., target_id: _Optional[str] = ..., state: _Optional[_Union[UploadJobState, str]] = ..., progress_percent: _Optional[int] = ..., result_url: _Optional[str] = ..., error: _Optional[str] = ..., poll_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUploadJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetUploadJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: UploadJob
    def __init__(self, job: _Optional[_Union[UploadJob, _Mapping]] = ...) -> None: ...
