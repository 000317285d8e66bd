import datetime

from foodfast.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotificationChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_CHANNEL_UNSPECIFIED: _ClassVar[NotificationChannel]
    NOTIFICATION_CHANNEL_PUSH: _ClassVar[NotificationChannel]
    NOTIFICATION_CHANNEL_SMS: _ClassVar[NotificationChannel]
    NOTIFICATION_CHANNEL_EMAIL: _ClassVar[NotificationChannel]

class NotificationPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_PRIORITY_UNSPECIFIED: _ClassVar[NotificationPriority]
    NOTIFICATION_PRIORITY_CRITICAL: _ClassVar[NotificationPriority]
    NOTIFICATION_PRIORITY_HIGH: _ClassVar[NotificationPriority]
    NOTIFICATION_PRIORITY_NORMAL: _ClassVar[NotificationPriority]
    NOTIFICATION_PRIORITY_LOW: _ClassVar[NotificationPriority]

class NotificationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_STATE_UNSPECIFIED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_QUEUED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_SENDING: _ClassVar[NotificationState]
    NOTIFICATION_STATE_RETRY_SCHEDULED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_SENT: _ClassVar[NotificationState]
    NOTIFICATION_STATE_FAILED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_DROPPED: _ClassVar[NotificationState]

class DevicePlatform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_PLATFORM_UNSPECIFIED: _ClassVar[DevicePlatform]
    DEVICE_PLATFORM_IOS: _ClassVar[DevicePlatform]
    DEVICE_PLATFORM_ANDROID: _ClassVar[DevicePlatform]
    DEVICE_PLATFORM_WEB: _ClassVar[DevicePlatform]

class AnnouncementSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOUNCEMENT_SEVERITY_UNSPECIFIED: _ClassVar[AnnouncementSeverity]
    ANNOUNCEMENT_SEVERITY_INFO: _ClassVar[AnnouncementSeverity]
    ANNOUNCEMENT_SEVERITY_WARNING: _ClassVar[AnnouncementSeverity]
    ANNOUNCEMENT_SEVERITY_CRITICAL: _ClassVar[AnnouncementSeverity]
NOTIFICATION_CHANNEL_UNSPECIFIED: NotificationChannel
NOTIFICATION_CHANNEL_PUSH: NotificationChannel
NOTIFICATION_CHANNEL_SMS: NotificationChannel
NOTIFICATION_CHANNEL_EMAIL: NotificationChannel
NOTIFICATION_PRIORITY_UNSPECIFIED: NotificationPriority
NOTIFICATION_PRIORITY_CRITICAL: NotificationPriority
NOTIFICATION_PRIORITY_HIGH: NotificationPriority
NOTIFICATION_PRIORITY_NORMAL: NotificationPriority
NOTIFICATION_PRIORITY_LOW: NotificationPriority
NOTIFICATION_STATE_UNSPECIFIED: NotificationState
NOTIFICATION_STATE_QUEUED: NotificationState
NOTIFICATION_STATE_SENDING: NotificationState
NOTIFICATION_STATE_RETRY_SCHEDULED: NotificationState
NOTIFICATION_STATE_SENT: NotificationState
NOTIFICATION_STATE_FAILED: NotificationState
NOTIFICATION_STATE_DROPPED: NotificationState
DEVICE_PLATFORM_UNSPECIFIED: DevicePlatform
DEVICE_PLATFORM_IOS: DevicePlatform
DEVICE_PLATFORM_ANDROID: DevicePlatform
DEVICE_PLATFORM_WEB: DevicePlatform
ANNOUNCEMENT_SEVERITY_UNSPECIFIED: AnnouncementSeverity
ANNOUNCEMENT_SEVERITY_INFO: AnnouncementSeverity
ANNOUNCEMENT_SEVERITY_WARNING: AnnouncementSeverity
ANNOUNCEMENT_SEVERITY_CRITICAL: AnnouncementSeverity

class NotificationTemplate(_message.Message):
    __slots__ = ("template_id", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, template_id: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NotificationMessage(_message.Message):
    __slots__ = ("title", "body")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("attempt", "attempted_at", "succeeded", "error")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    attempted_at: _timestamp_pb2.Timestamp
    succeeded: bool
    error: str
    def __init__(self, attempt: _Optional[int] = ..., attempted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., succeeded: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("notification_id", "recipient_id", "channel", "priority", "state", "attempts", "next_attempt_at", "created_at", "updated_at")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    recipient_id: str
    channel: NotificationChannel
    priority: NotificationPriority
    state: NotificationState
    attempts: _containers.RepeatedCompositeFieldContainer[DeliveryAttempt]
    next_attempt_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, notification_id: _Optional[str] = ..., recipient_id: _Optional[str] = ..., channel: _Optional[_Union[NotificationChannel, str]] = ..., priority: _Optional[_Union[NotificationPriority, str]] = ..., state: _Optional[_Union[NotificationState, str]] = ..., attempts: _Optional[_Iterable[_Union[DeliveryAttempt, _Mapping]]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Announcement(_message.Message):
    __slots__ = ("announcement_id", "title", "body", "severity", "audience", "city", "published_at", "expires_at")
    ANNOUNCEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    announcement_id: str
    title: str
    body: str
    severity: AnnouncementSeverity
    audience: _containers.RepeatedScalarFieldContainer[_common_pb2.Role]
    city: str
    published_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, announcement_id: _Optional[str] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., severity: _Optional[_Union[AnnouncementSeverity, str]] = ..., audience: _Optional[_Iterable[_Union[_common_pb2.Role, str]]] = ..., city: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SendNotificationRequest(_message.Message):
    __slots__ = ("recipient_id", "channel", "priority", "idempotency_key", "template", "message")
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    recipient_id: str
    channel: NotificationChannel
    priority: NotificationPriority
    idempotency_key: str
    template: NotificationTemplate
    message: NotificationMessage
    def __init__(self, recipient_id: _Optional[str] = ..., channel: _Optional[_Union[NotificationChannel, str]] = ..., priority: _Optional[_Union[NotificationPriority, str]] = ..., idempotency_key: _Optional[str] = ..., template: _Optional[_Union[NotificationTemplate, _Mapping]] = ..., message: _Optional[_Union[NotificationMessage, _Mapping]] = ...) -> None: ...

class SendNotificationResponse(_message.Message):
    __slots__ = ("notification_id",)
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    def __init__(self, notification_id: _Optional[str] = ...) -> None: ...

class GetNotificationRequest(_message.Message):
    __slots__ = ("notification_id",)
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    def __init__(self, notification_id: _Optional[str] = ...) -> None: ...

class GetNotificationResponse(_message.Message):
    __slots__ = ("notification",)
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("platform", "push_token")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PUSH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    platform: DevicePlatform
    push_token: str
    def __init__(self, platform: _Optional[_Union[DevicePlatform, str]] = ..., push_token: _Optional[str] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class UnregisterDeviceRequest(_message.Message):
    __slots__ = ("push_token",)
    PUSH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    push_token: str
    def __init__(self, push_token: _Optional[str] = ...) -> None: ...

class UnregisterDeviceResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class WatchAnnouncementsRequest(_message.Message):
    __slots__ = ("after_cursor",)
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    after_cursor: str
    def __init__(self, after_cursor: _Optional[str] = ...) -> None: ...

class WatchAnnouncementsResponse(_message.Message):
    __slots__ = ("cursor", "announcement", "heartbeat")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    announcement: Announcement
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, cursor: _Optional[str] = ..., announcement: _Optional[_Union[Announcement, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...

class PublishAnnouncementRequest(_message.Message):
    __slots__ = ("title", "body", "severity", "audience", "city", "expires_at", "idempotency_key")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    severity: AnnouncementSeverity
    audience: _containers.RepeatedScalarFieldContainer[_common_pb2.Role]
    city: str
    expires_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., severity: _Optional[_Union[AnnouncementSeverity, str]] = ..., audience: _Optional[_Iterable[_Union[_common_pb2.Role, str]]] = ..., city: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PublishAnnouncementResponse(_message.Message):
    __slots__ = ("announcement",)
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    announcement: Announcement
    def __init__(self, announcement: _Optional[_Union[Announcement, _Mapping]] = ...) -> None: ...
