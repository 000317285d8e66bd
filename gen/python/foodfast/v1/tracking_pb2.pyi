import datetime

from foodfast.v1 import common_pb2 as _common_pb2
from foodfast.v1 import order_pb2 as _order_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrackingNoticeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACKING_NOTICE_KIND_UNSPECIFIED: _ClassVar[TrackingNoticeKind]
    TRACKING_NOTICE_KIND_LIVE_UPDATES_DEGRADED: _ClassVar[TrackingNoticeKind]
    TRACKING_NOTICE_KIND_LIVE_UPDATES_RESTORED: _ClassVar[TrackingNoticeKind]
TRACKING_NOTICE_KIND_UNSPECIFIED: TrackingNoticeKind
TRACKING_NOTICE_KIND_LIVE_UPDATES_DEGRADED: TrackingNoticeKind
TRACKING_NOTICE_KIND_LIVE_UPDATES_RESTORED: TrackingNoticeKind

class TrackOrderRequest(_message.Message):
    __slots__ = ("order_id", "resume_after", "max_location_updates_per_second")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_FIELD_NUMBER: _ClassVar[int]
    MAX_LOCATION_UPDATES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    resume_after: int
    max_location_updates_per_second: int
    def __init__(self, order_id: _Optional[str] = ..., resume_after: _Optional[int] = ..., max_location_updates_per_second: _Optional[int] = ...) -> None: ...

class TrackingSnapshot(_message.Message):
    __slots__ = ("order", "eta")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    order: _order_pb2.Order
    eta: TrackingEta
    def __init__(self, order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ..., eta: _Optional[_Union[TrackingEta, _Mapping]] = ...) -> None: ...

class DriverLocationUpdate(_message.Message):
    __slots__ = ("position", "heading_deg", "speed_mps", "recorded_at")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    HEADING_DEG_FIELD_NUMBER: _ClassVar[int]
    SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    position: _common_pb2.LatLng
    heading_deg: float
    speed_mps: float
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, position: _Optional[_Union[_common_pb2.LatLng, _Mapping]] = ..., heading_deg: _Optional[float] = ..., speed_mps: _Optional[float] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrackingEta(_message.Message):
    __slots__ = ("estimated_pickup_at", "estimated_delivery_at", "remaining_distance_m", "computed_at")
    ESTIMATED_PICKUP_AT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DELIVERY_AT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    estimated_pickup_at: _timestamp_pb2.Timestamp
    estimated_delivery_at: _timestamp_pb2.Timestamp
    remaining_distance_m: int
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, estimated_pickup_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_delivery_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remaining_distance_m: _Optional[int] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrackingNotice(_message.Message):
    __slots__ = ("kind", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: TrackingNoticeKind
    message: str
    def __init__(self, kind: _Optional[_Union[TrackingNoticeKind, str]] = ..., message: _Optional[str] = ...) -> None: ...

class TrackOrderResponse(_message.Message):
    __slots__ = ("seq", "snapshot", "event", "driver_location", "eta", "notice", "heartbeat")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    DRIVER_LOCATION_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    snapshot: TrackingSnapshot
    event: _common_pb2.OrderEvent
    driver_location: DriverLocationUpdate
    eta: TrackingEta
    notice: TrackingNotice
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, seq: _Optional[int] = ..., snapshot: _Optional[_Union[TrackingSnapshot, _Mapping]] = ..., event: _Optional[_Union[_common_pb2.OrderEvent, _Mapping]] = ..., driver_location: _Optional[_Union[DriverLocationUpdate, _Mapping]] = ..., eta: _Optional[_Union[TrackingEta, _Mapping]] = ..., notice: _Optional[_Union[TrackingNotice, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...

class GetDriverTrackRequest(_message.Message):
    __slots__ = ("driver_id", "start_time", "end_time", "page_size", "page_token")
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, driver_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetDriverTrackResponse(_message.Message):
    __slots__ = ("points", "next_page_token")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.LocationPing]
    next_page_token: str
    def __init__(self, points: _Optional[_Iterable[_Union[_common_pb2.LocationPing, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportCityPingsRequest(_message.Message):
    __slots__ = ("city", "day")
    CITY_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    city: str
    day: str
    def __init__(self, city: _Optional[str] = ..., day: _Optional[str] = ...) -> None: ...

class CityPing(_message.Message):
    __slots__ = ("driver_id", "ping")
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    ping: _common_pb2.LocationPing
    def __init__(self, driver_id: _Optional[str] = ..., ping: _Optional[_Union[_common_pb2.LocationPing, _Mapping]] = ...) -> None: ...

class ExportCityPingsResponse(_message.Message):
    __slots__ = ("pings",)
    PINGS_FIELD_NUMBER: _ClassVar[int]
    pings: _containers.RepeatedCompositeFieldContainer[CityPing]
    def __init__(self, pings: _Optional[_Iterable[_Union[CityPing, _Mapping]]] = ...) -> None: ...
