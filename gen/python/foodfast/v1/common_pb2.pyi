import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING: _ClassVar[OrderStatus]
    ORDER_STATUS_CONFIRMED: _ClassVar[OrderStatus]
    ORDER_STATUS_PREPARING: _ClassVar[OrderStatus]
    ORDER_STATUS_READY_FOR_PICKUP: _ClassVar[OrderStatus]
    ORDER_STATUS_DRIVER_ASSIGNED: _ClassVar[OrderStatus]
    ORDER_STATUS_PICKED_UP: _ClassVar[OrderStatus]
    ORDER_STATUS_DELIVERING: _ClassVar[OrderStatus]
    ORDER_STATUS_DELIVERED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELLED: _ClassVar[OrderStatus]
    ORDER_STATUS_REJECTED: _ClassVar[OrderStatus]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_CUSTOMER: _ClassVar[Role]
    ROLE_RESTAURANT_STAFF: _ClassVar[Role]
    ROLE_DRIVER: _ClassVar[Role]
    ROLE_SUPPORT: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]

class Actor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTOR_UNSPECIFIED: _ClassVar[Actor]
    ACTOR_CUSTOMER: _ClassVar[Actor]
    ACTOR_RESTAURANT: _ClassVar[Actor]
    ACTOR_DRIVER: _ClassVar[Actor]
    ACTOR_SUPPORT: _ClassVar[Actor]
    ACTOR_ADMIN: _ClassVar[Actor]
    ACTOR_SYSTEM: _ClassVar[Actor]

class OrderEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_EVENT_KIND_UNSPECIFIED: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_STATUS_CHANGED: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_DRIVER_ASSIGNED: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_DRIVER_ARRIVED_AT_RESTAURANT: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_DRIVER_ARRIVED_AT_CUSTOMER: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_DISPATCH_DELAYED: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_PREP_TIME_UPDATED: _ClassVar[OrderEventKind]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_PAYMENT_DECLINED: _ClassVar[ErrorReason]
    ERROR_REASON_PAYMENT_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_RESTAURANT_CLOSED: _ClassVar[ErrorReason]
    ERROR_REASON_ITEM_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_OUTSIDE_DELIVERY_AREA: _ClassVar[ErrorReason]
    ERROR_REASON_IDEMPOTENCY_KEY_REUSED: _ClassVar[ErrorReason]
    ERROR_REASON_ILLEGAL_TRANSITION: _ClassVar[ErrorReason]
    ERROR_REASON_OFFER_CLOSED: _ClassVar[ErrorReason]
    ERROR_REASON_ASSIGNMENT_CONFLICT: _ClassVar[ErrorReason]
    ERROR_REASON_VERSION_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_CREDENTIALS: _ClassVar[ErrorReason]
    ERROR_REASON_TOKEN_EXPIRED: _ClassVar[ErrorReason]
    ERROR_REASON_RATE_LIMITED: _ClassVar[ErrorReason]
    ERROR_REASON_QUEUE_FULL: _ClassVar[ErrorReason]
    ERROR_REASON_OVERLOADED: _ClassVar[ErrorReason]
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING: OrderStatus
ORDER_STATUS_CONFIRMED: OrderStatus
ORDER_STATUS_PREPARING: OrderStatus
ORDER_STATUS_READY_FOR_PICKUP: OrderStatus
ORDER_STATUS_DRIVER_ASSIGNED: OrderStatus
ORDER_STATUS_PICKED_UP: OrderStatus
ORDER_STATUS_DELIVERING: OrderStatus
ORDER_STATUS_DELIVERED: OrderStatus
ORDER_STATUS_CANCELLED: OrderStatus
ORDER_STATUS_REJECTED: OrderStatus
ROLE_UNSPECIFIED: Role
ROLE_CUSTOMER: Role
ROLE_RESTAURANT_STAFF: Role
ROLE_DRIVER: Role
ROLE_SUPPORT: Role
ROLE_ADMIN: Role
ACTOR_UNSPECIFIED: Actor
ACTOR_CUSTOMER: Actor
ACTOR_RESTAURANT: Actor
ACTOR_DRIVER: Actor
ACTOR_SUPPORT: Actor
ACTOR_ADMIN: Actor
ACTOR_SYSTEM: Actor
ORDER_EVENT_KIND_UNSPECIFIED: OrderEventKind
ORDER_EVENT_KIND_STATUS_CHANGED: OrderEventKind
ORDER_EVENT_KIND_DRIVER_ASSIGNED: OrderEventKind
ORDER_EVENT_KIND_DRIVER_ARRIVED_AT_RESTAURANT: OrderEventKind
ORDER_EVENT_KIND_DRIVER_ARRIVED_AT_CUSTOMER: OrderEventKind
ORDER_EVENT_KIND_DISPATCH_DELAYED: OrderEventKind
ORDER_EVENT_KIND_PREP_TIME_UPDATED: OrderEventKind
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_PAYMENT_DECLINED: ErrorReason
ERROR_REASON_PAYMENT_UNAVAILABLE: ErrorReason
ERROR_REASON_RESTAURANT_CLOSED: ErrorReason
ERROR_REASON_ITEM_UNAVAILABLE: ErrorReason
ERROR_REASON_OUTSIDE_DELIVERY_AREA: ErrorReason
ERROR_REASON_IDEMPOTENCY_KEY_REUSED: ErrorReason
ERROR_REASON_ILLEGAL_TRANSITION: ErrorReason
ERROR_REASON_OFFER_CLOSED: ErrorReason
ERROR_REASON_ASSIGNMENT_CONFLICT: ErrorReason
ERROR_REASON_VERSION_MISMATCH: ErrorReason
ERROR_REASON_INVALID_CREDENTIALS: ErrorReason
ERROR_REASON_TOKEN_EXPIRED: ErrorReason
ERROR_REASON_RATE_LIMITED: ErrorReason
ERROR_REASON_QUEUE_FULL: ErrorReason
ERROR_REASON_OVERLOADED: ErrorReason

class Money(_message.Message):
    __slots__ = ("currency_code", "amount")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    amount: str
    def __init__(self, currency_code: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class LatLng(_message.Message):
    __slots__ = ("lat", "lng")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lng: float
    def __init__(self, lat: _Optional[float] = ..., lng: _Optional[float] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("location", "formatted", "instructions")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    FORMATTED_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    location: LatLng
    formatted: str
    instructions: str
    def __init__(self, location: _Optional[_Union[LatLng, _Mapping]] = ..., formatted: _Optional[str] = ..., instructions: _Optional[str] = ...) -> None: ...

class EtaWindow(_message.Message):
    __slots__ = ("earliest", "latest")
    EARLIEST_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    earliest: _timestamp_pb2.Timestamp
    latest: _timestamp_pb2.Timestamp
    def __init__(self, earliest: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("seq", "order_id", "kind", "status", "previous_status", "actor", "occurred_at", "reason", "driver")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    seq: int
    order_id: str
    kind: OrderEventKind
    status: OrderStatus
    previous_status: OrderStatus
    actor: Actor
    occurred_at: _timestamp_pb2.Timestamp
    reason: str
    driver: DriverSummary
    def __init__(self, seq: _Optional[int] = ..., order_id: _Optional[str] = ..., kind: _Optional[_Union[OrderEventKind, str]] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., previous_status: _Optional[_Union[OrderStatus, str]] = ..., actor: _Optional[_Union[Actor, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., driver: _Optional[_Union[DriverSummary, _Mapping]] = ...) -> None: ...

class DriverSummary(_message.Message):
    __slots__ = ("driver_id", "display_name", "vehicle", "position", "position_recorded_at")
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    POSITION_RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    display_name: str
    vehicle: str
    position: LatLng
    position_recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, driver_id: _Optional[str] = ..., display_name: _Optional[str] = ..., vehicle: _Optional[str] = ..., position: _Optional[_Union[LatLng, _Mapping]] = ..., position_recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LocationPing(_message.Message):
    __slots__ = ("seq", "lat", "lng", "accuracy_m", "speed_mps", "heading_deg", "recorded_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_M_FIELD_NUMBER: _ClassVar[int]
    SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    HEADING_DEG_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float
    heading_deg: float
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, seq: _Optional[int] = ..., lat: _Optional[float] = ..., lng: _Optional[float] = ..., accuracy_m: _Optional[float] = ..., speed_mps: _Optional[float] = ..., heading_deg: _Optional[float] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("server_time", "interval")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    interval: _duration_pb2.Duration
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
