import datetime

from foodfast.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DriverAvailability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRIVER_AVAILABILITY_UNSPECIFIED: _ClassVar[DriverAvailability]
    DRIVER_AVAILABILITY_ONLINE: _ClassVar[DriverAvailability]
    DRIVER_AVAILABILITY_OFFLINE: _ClassVar[DriverAvailability]
    DRIVER_AVAILABILITY_BUSY: _ClassVar[DriverAvailability]

class PingRejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PING_REJECTION_REASON_UNSPECIFIED: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_COORDINATES_OUT_OF_RANGE: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_TIMESTAMP_IN_FUTURE: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_TIMESTAMP_TOO_OLD: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_IMPOSSIBLE_SPEED: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_DUPLICATE_SEQ: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_OUT_OF_ORDER: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_INVALID_FIELD: _ClassVar[PingRejectionReason]
    PING_REJECTION_REASON_RATE_LIMITED: _ClassVar[PingRejectionReason]

class OfferDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFER_DECISION_UNSPECIFIED: _ClassVar[OfferDecision]
    OFFER_DECISION_ACCEPT: _ClassVar[OfferDecision]
    OFFER_DECISION_DECLINE: _ClassVar[OfferDecision]

class OfferClosedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFER_CLOSED_REASON_UNSPECIFIED: _ClassVar[OfferClosedReason]
    OFFER_CLOSED_REASON_DECLINED: _ClassVar[OfferClosedReason]
    OFFER_CLOSED_REASON_EXPIRED: _ClassVar[OfferClosedReason]
    OFFER_CLOSED_REASON_WITHDRAWN: _ClassVar[OfferClosedReason]

class AssignmentChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSIGNMENT_CHANGE_KIND_UNSPECIFIED: _ClassVar[AssignmentChangeKind]
    ASSIGNMENT_CHANGE_KIND_ASSIGNED: _ClassVar[AssignmentChangeKind]
    ASSIGNMENT_CHANGE_KIND_UPDATED: _ClassVar[AssignmentChangeKind]
    ASSIGNMENT_CHANGE_KIND_UNASSIGNED: _ClassVar[AssignmentChangeKind]
    ASSIGNMENT_CHANGE_KIND_CANCELLED: _ClassVar[AssignmentChangeKind]

class DeliveryStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STEP_UNSPECIFIED: _ClassVar[DeliveryStep]
    DELIVERY_STEP_ARRIVED_AT_RESTAURANT: _ClassVar[DeliveryStep]
    DELIVERY_STEP_PICKED_UP: _ClassVar[DeliveryStep]
    DELIVERY_STEP_ARRIVED_AT_CUSTOMER: _ClassVar[DeliveryStep]
    DELIVERY_STEP_DELIVERED: _ClassVar[DeliveryStep]

class DeliveryStop(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STOP_UNSPECIFIED: _ClassVar[DeliveryStop]
    DELIVERY_STOP_RESTAURANT: _ClassVar[DeliveryStop]
    DELIVERY_STOP_CUSTOMER: _ClassVar[DeliveryStop]

class TransitionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSITION_OUTCOME_UNSPECIFIED: _ClassVar[TransitionOutcome]
    TRANSITION_OUTCOME_APPLIED: _ClassVar[TransitionOutcome]
    TRANSITION_OUTCOME_ALREADY_APPLIED: _ClassVar[TransitionOutcome]
    TRANSITION_OUTCOME_REFUSED: _ClassVar[TransitionOutcome]
    TRANSITION_OUTCOME_FAILED: _ClassVar[TransitionOutcome]
DRIVER_AVAILABILITY_UNSPECIFIED: DriverAvailability
DRIVER_AVAILABILITY_ONLINE: DriverAvailability
DRIVER_AVAILABILITY_OFFLINE: DriverAvailability
DRIVER_AVAILABILITY_BUSY: DriverAvailability
PING_REJECTION_REASON_UNSPECIFIED: PingRejectionReason
PING_REJECTION_REASON_COORDINATES_OUT_OF_RANGE: PingRejectionReason
PING_REJECTION_REASON_TIMESTAMP_IN_FUTURE: PingRejectionReason
PING_REJECTION_REASON_TIMESTAMP_TOO_OLD: PingRejectionReason
PING_REJECTION_REASON_IMPOSSIBLE_SPEED: PingRejectionReason
PING_REJECTION_REASON_DUPLICATE_SEQ: PingRejectionReason
PING_REJECTION_REASON_OUT_OF_ORDER: PingRejectionReason
PING_REJECTION_REASON_INVALID_FIELD: PingRejectionReason
PING_REJECTION_REASON_RATE_LIMITED: PingRejectionReason
OFFER_DECISION_UNSPECIFIED: OfferDecision
OFFER_DECISION_ACCEPT: OfferDecision
OFFER_DECISION_DECLINE: OfferDecision
OFFER_CLOSED_REASON_UNSPECIFIED: OfferClosedReason
OFFER_CLOSED_REASON_DECLINED: OfferClosedReason
OFFER_CLOSED_REASON_EXPIRED: OfferClosedReason
OFFER_CLOSED_REASON_WITHDRAWN: OfferClosedReason
ASSIGNMENT_CHANGE_KIND_UNSPECIFIED: AssignmentChangeKind
ASSIGNMENT_CHANGE_KIND_ASSIGNED: AssignmentChangeKind
ASSIGNMENT_CHANGE_KIND_UPDATED: AssignmentChangeKind
ASSIGNMENT_CHANGE_KIND_UNASSIGNED: AssignmentChangeKind
ASSIGNMENT_CHANGE_KIND_CANCELLED: AssignmentChangeKind
DELIVERY_STEP_UNSPECIFIED: DeliveryStep
DELIVERY_STEP_ARRIVED_AT_RESTAURANT: DeliveryStep
DELIVERY_STEP_PICKED_UP: DeliveryStep
DELIVERY_STEP_ARRIVED_AT_CUSTOMER: DeliveryStep
DELIVERY_STEP_DELIVERED: DeliveryStep
DELIVERY_STOP_UNSPECIFIED: DeliveryStop
DELIVERY_STOP_RESTAURANT: DeliveryStop
DELIVERY_STOP_CUSTOMER: DeliveryStop
TRANSITION_OUTCOME_UNSPECIFIED: TransitionOutcome
TRANSITION_OUTCOME_APPLIED: TransitionOutcome
TRANSITION_OUTCOME_ALREADY_APPLIED: TransitionOutcome
TRANSITION_OUTCOME_REFUSED: TransitionOutcome
TRANSITION_OUTCOME_FAILED: TransitionOutcome

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "order_id", "order_status", "restaurant_name", "restaurant_address", "customer_name", "customer_address", "item_count", "food_ready_at", "pickup_eta", "dropoff_eta", "estimated_earnings")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_NAME_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    FOOD_READY_AT_FIELD_NUMBER: _ClassVar[int]
    PICKUP_ETA_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_ETA_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_EARNINGS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    order_id: str
    order_status: _common_pb2.OrderStatus
    restaurant_name: str
    restaurant_address: _common_pb2.Address
    customer_name: str
    customer_address: _common_pb2.Address
    item_count: int
    food_ready_at: _timestamp_pb2.Timestamp
    pickup_eta: _timestamp_pb2.Timestamp
    dropoff_eta: _timestamp_pb2.Timestamp
    estimated_earnings: _common_pb2.Money
    def __init__(self, delivery_id: _Optional[str] = ..., order_id: _Optional[str] = ..., order_status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., restaurant_name: _Optional[str] = ..., restaurant_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., customer_name: _Optional[str] = ..., customer_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., item_count: _Optional[int] = ..., food_ready_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pickup_eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dropoff_eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_earnings: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class Offer(_message.Message):
    __slots__ = ("offer_id", "delivery_id", "order_id", "restaurant_name", "pickup", "dropoff_area", "dropoff_area_name", "pickup_distance_m", "dropoff_distance_m", "estimated_earnings", "food_ready_at", "expires_at")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_NAME_FIELD_NUMBER: _ClassVar[int]
    PICKUP_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_AREA_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_AREA_NAME_FIELD_NUMBER: _ClassVar[int]
    PICKUP_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_EARNINGS_FIELD_NUMBER: _ClassVar[int]
    FOOD_READY_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    delivery_id: str
    order_id: str
    restaurant_name: str
    pickup: _common_pb2.Address
    dropoff_area: _common_pb2.LatLng
    dropoff_area_name: str
    pickup_distance_m: int
    dropoff_distance_m: int
    estimated_earnings: _common_pb2.Money
    food_ready_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, offer_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., order_id: _Optional[str] = ..., restaurant_name: _Optional[str] = ..., pickup: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., dropoff_area: _Optional[_Union[_common_pb2.LatLng, _Mapping]] = ..., dropoff_area_name: _Optional[str] = ..., pickup_distance_m: _Optional[int] = ..., dropoff_distance_m: _Optional[int] = ..., estimated_earnings: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., food_ready_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("app_version", "availability")
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    app_version: str
    availability: DriverAvailability
    def __init__(self, app_version: _Optional[str] = ..., availability: _Optional[_Union[DriverAvailability, str]] = ...) -> None: ...

class AvailabilityChange(_message.Message):
    __slots__ = ("availability", "reason")
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    availability: DriverAvailability
    reason: str
    def __init__(self, availability: _Optional[_Union[DriverAvailability, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class OfferAnswer(_message.Message):
    __slots__ = ("offer_id", "decision", "reason")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    decision: OfferDecision
    reason: str
    def __init__(self, offer_id: _Optional[str] = ..., decision: _Optional[_Union[OfferDecision, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class DeliveryTransition(_message.Message):
    __slots__ = ("transition_id", "order_id", "step", "occurred_at")
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    transition_id: str
    order_id: str
    step: DeliveryStep
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, transition_id: _Optional[str] = ..., order_id: _Optional[str] = ..., step: _Optional[_Union[DeliveryStep, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("hello", "ping", "availability", "offer_answer", "transition")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    OFFER_ANSWER_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    ping: _common_pb2.LocationPing
    availability: AvailabilityChange
    offer_answer: OfferAnswer
    transition: DeliveryTransition
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., ping: _Optional[_Union[_common_pb2.LocationPing, _Mapping]] = ..., availability: _Optional[_Union[AvailabilityChange, _Mapping]] = ..., offer_answer: _Optional[_Union[OfferAnswer, _Mapping]] = ..., transition: _Optional[_Union[DeliveryTransition, _Mapping]] = ...) -> None: ...

class RejectedPing(_message.Message):
    __slots__ = ("seq", "reason", "detail")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reason: PingRejectionReason
    detail: str
    def __init__(self, seq: _Optional[int] = ..., reason: _Optional[_Union[PingRejectionReason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class PingAck(_message.Message):
    __slots__ = ("durable_seq", "rejected")
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    durable_seq: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedPing]
    def __init__(self, durable_seq: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedPing, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("driver_id", "durable_seq", "availability", "active_deliveries", "open_offers", "hint")
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    OPEN_OFFERS_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    durable_seq: int
    availability: DriverAvailability
    active_deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    open_offers: _containers.RepeatedCompositeFieldContainer[Offer]
    hint: ServerHint
    def __init__(self, driver_id: _Optional[str] = ..., durable_seq: _Optional[int] = ..., availability: _Optional[_Union[DriverAvailability, str]] = ..., active_deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., open_offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ..., hint: _Optional[_Union[ServerHint, _Mapping]] = ...) -> None: ...

class OfferClosed(_message.Message):
    __slots__ = ("offer_id", "delivery_id", "reason")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    delivery_id: str
    reason: OfferClosedReason
    def __init__(self, offer_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., reason: _Optional[_Union[OfferClosedReason, str]] = ...) -> None: ...

class AssignmentChange(_message.Message):
    __slots__ = ("kind", "delivery", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: AssignmentChangeKind
    delivery: Delivery
    reason: str
    def __init__(self, kind: _Optional[_Union[AssignmentChangeKind, str]] = ..., delivery: _Optional[_Union[Delivery, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class TransitionResult(_message.Message):
    __slots__ = ("transition_id", "order_id", "step", "outcome", "order_status", "error")
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ORDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    transition_id: str
    order_id: str
    step: DeliveryStep
    outcome: TransitionOutcome
    order_status: _common_pb2.OrderStatus
    error: str
    def __init__(self, transition_id: _Optional[str] = ..., order_id: _Optional[str] = ..., step: _Optional[_Union[DeliveryStep, str]] = ..., outcome: _Optional[_Union[TransitionOutcome, str]] = ..., order_status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., error: _Optional[str] = ...) -> None: ...

class OfferAnswerFailed(_message.Message):
    __slots__ = ("offer_id", "code", "message", "retry_after")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    code: int
    message: str
    retry_after: _duration_pb2.Duration
    def __init__(self, offer_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ServerHint(_message.Message):
    __slots__ = ("ping_interval", "reconnect")
    PING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_FIELD_NUMBER: _ClassVar[int]
    ping_interval: _duration_pb2.Duration
    reconnect: bool
    def __init__(self, ping_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reconnect: _Optional[bool] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("welcome", "ack", "offer", "offer_closed", "assignment", "transition_result", "availability", "hint", "heartbeat", "offer_answer_failed")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    OFFER_CLOSED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_RESULT_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    OFFER_ANSWER_FAILED_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    ack: PingAck
    offer: Offer
    offer_closed: OfferClosed
    assignment: AssignmentChange
    transition_result: TransitionResult
    availability: AvailabilityChange
    hint: ServerHint
    heartbeat: _common_pb2.Heartbeat
    offer_answer_failed: OfferAnswerFailed
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[PingAck, _Mapping]] = ..., offer: _Optional[_Union[Offer, _Mapping]] = ..., offer_closed: _Optional[_Union[OfferClosed, _Mapping]] = ..., assignment: _Optional[_Union[AssignmentChange, _Mapping]] = ..., transition_result: _Optional[_Union[TransitionResult, _Mapping]] = ..., availability: _Optional[_Union[AvailabilityChange, _Mapping]] = ..., hint: _Optional[_Union[ServerHint, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ..., offer_answer_failed: _Optional[_Union[OfferAnswerFailed, _Mapping]] = ...) -> None: ...

class ReportLocationRequest(_message.Message):
    __slots__ = ("pings",)
    PINGS_FIELD_NUMBER: _ClassVar[int]
    pings: _containers.RepeatedCompositeFieldContainer[_common_pb2.LocationPing]
    def __init__(self, pings: _Optional[_Iterable[_Union[_common_pb2.LocationPing, _Mapping]]] = ...) -> None: ...

class ReportLocationResponse(_message.Message):
    __slots__ = ("ack",)
    ACK_FIELD_NUMBER: _ClassVar[int]
    ack: PingAck
    def __init__(self, ack: _Optional[_Union[PingAck, _Mapping]] = ...) -> None: ...

class SetAvailabilityRequest(_message.Message):
    __slots__ = ("availability",)
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    availability: DriverAvailability
    def __init__(self, availability: _Optional[_Union[DriverAvailability, str]] = ...) -> None: ...

class SetAvailabilityResponse(_message.Message):
    __slots__ = ("availability",)
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    availability: DriverAvailability
    def __init__(self, availability: _Optional[_Union[DriverAvailability, str]] = ...) -> None: ...

class GetDriverStateRequest(_message.Message):
    __slots__ = ("driver_id",)
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    def __init__(self, driver_id: _Optional[str] = ...) -> None: ...

class GetDriverStateResponse(_message.Message):
    __slots__ = ("driver_id", "availability", "connected", "last_position", "last_position_at", "durable_seq", "active_deliveries", "open_offers")
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_POSITION_FIELD_NUMBER: _ClassVar[int]
    LAST_POSITION_AT_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    OPEN_OFFERS_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    availability: DriverAvailability
    connected: bool
    last_position: _common_pb2.LatLng
    last_position_at: _timestamp_pb2.Timestamp
    durable_seq: int
    active_deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    open_offers: _containers.RepeatedCompositeFieldContainer[Offer]
    def __init__(self, driver_id: _Optional[str] = ..., availability: _Optional[_Union[DriverAvailability, str]] = ..., connected: _Optional[bool] = ..., last_position: _Optional[_Union[_common_pb2.LatLng, _Mapping]] = ..., last_position_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., durable_seq: _Optional[int] = ..., active_deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., open_offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ...) -> None: ...

class AcceptOfferRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class AcceptOfferResponse(_message.Message):
    __slots__ = ("delivery_id", "order_id", "restaurant_name", "restaurant_address", "customer_address", "pickup_eta", "food_ready_at", "estimated_earnings")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_NAME_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PICKUP_ETA_FIELD_NUMBER: _ClassVar[int]
    FOOD_READY_AT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_EARNINGS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    order_id: str
    restaurant_name: str
    restaurant_address: _common_pb2.Address
    customer_address: _common_pb2.Address
    pickup_eta: _timestamp_pb2.Timestamp
    food_ready_at: _timestamp_pb2.Timestamp
    estimated_earnings: _common_pb2.Money
    def __init__(self, delivery_id: _Optional[str] = ..., order_id: _Optional[str] = ..., restaurant_name: _Optional[str] = ..., restaurant_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., customer_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., pickup_eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., food_ready_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_earnings: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class DeclineOfferRequest(_message.Message):
    __slots__ = ("delivery_id", "reason")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    reason: str
    def __init__(self, delivery_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeclineOfferResponse(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class MarkArrivedRequest(_message.Message):
    __slots__ = ("order_id", "stop")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    stop: DeliveryStop
    def __init__(self, order_id: _Optional[str] = ..., stop: _Optional[_Union[DeliveryStop, str]] = ...) -> None: ...

class MarkArrivedResponse(_message.Message):
    __slots__ = ("order_id", "status", "seq")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: _common_pb2.OrderStatus
    seq: int
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class MarkPickedUpRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class MarkPickedUpResponse(_message.Message):
    __slots__ = ("order_id", "status", "seq")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: _common_pb2.OrderStatus
    seq: int
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class MarkDeliveredRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class MarkDeliveredResponse(_message.Message):
    __slots__ = ("order_id", "status", "seq")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: _common_pb2.OrderStatus
    seq: int
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., seq: _Optional[int] = ...) -> None: ...
