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

class MatchingPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCHING_PHASE_UNSPECIFIED: _ClassVar[MatchingPhase]
    MATCHING_PHASE_NOT_STARTED: _ClassVar[MatchingPhase]
    MATCHING_PHASE_SEARCHING: _ClassVar[MatchingPhase]
    MATCHING_PHASE_OFFERED: _ClassVar[MatchingPhase]
    MATCHING_PHASE_ASSIGNED: _ClassVar[MatchingPhase]
    MATCHING_PHASE_FLAGGED: _ClassVar[MatchingPhase]
    MATCHING_PHASE_CLOSED: _ClassVar[MatchingPhase]

class MatchingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCHING_MODE_UNSPECIFIED: _ClassVar[MatchingMode]
    MATCHING_MODE_GREEDY: _ClassVar[MatchingMode]
    MATCHING_MODE_BATCH: _ClassVar[MatchingMode]

class OfferOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFER_OUTCOME_UNSPECIFIED: _ClassVar[OfferOutcome]
    OFFER_OUTCOME_PENDING: _ClassVar[OfferOutcome]
    OFFER_OUTCOME_ACCEPTED: _ClassVar[OfferOutcome]
    OFFER_OUTCOME_DECLINED: _ClassVar[OfferOutcome]
    OFFER_OUTCOME_EXPIRED: _ClassVar[OfferOutcome]
    OFFER_OUTCOME_WITHDRAWN: _ClassVar[OfferOutcome]
MATCHING_PHASE_UNSPECIFIED: MatchingPhase
MATCHING_PHASE_NOT_STARTED: MatchingPhase
MATCHING_PHASE_SEARCHING: MatchingPhase
MATCHING_PHASE_OFFERED: MatchingPhase
MATCHING_PHASE_ASSIGNED: MatchingPhase
MATCHING_PHASE_FLAGGED: MatchingPhase
MATCHING_PHASE_CLOSED: MatchingPhase
MATCHING_MODE_UNSPECIFIED: MatchingMode
MATCHING_MODE_GREEDY: MatchingMode
MATCHING_MODE_BATCH: MatchingMode
OFFER_OUTCOME_UNSPECIFIED: OfferOutcome
OFFER_OUTCOME_PENDING: OfferOutcome
OFFER_OUTCOME_ACCEPTED: OfferOutcome
OFFER_OUTCOME_DECLINED: OfferOutcome
OFFER_OUTCOME_EXPIRED: OfferOutcome
OFFER_OUTCOME_WITHDRAWN: OfferOutcome

class OfferRecord(_message.Message):
    __slots__ = ("offer_id", "driver_id", "round", "score", "distance_m", "offered_at", "expires_at", "outcome", "decided_at")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    OFFERED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    driver_id: str
    round: int
    score: float
    distance_m: int
    offered_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    outcome: OfferOutcome
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, offer_id: _Optional[str] = ..., driver_id: _Optional[str] = ..., round: _Optional[int] = ..., score: _Optional[float] = ..., distance_m: _Optional[int] = ..., offered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[_Union[OfferOutcome, str]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AssignDriverRequest(_message.Message):
    __slots__ = ("order_id", "driver_id", "replace", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    driver_id: str
    replace: bool
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., driver_id: _Optional[str] = ..., replace: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AssignDriverResponse(_message.Message):
    __slots__ = ("order_id", "delivery_id", "driver_id", "status", "seq")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    delivery_id: str
    driver_id: str
    status: _common_pb2.OrderStatus
    seq: int
    def __init__(self, order_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., driver_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class GetMatchingStateRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class GetMatchingStateResponse(_message.Message):
    __slots__ = ("order_id", "phase", "mode", "round", "radius_m", "offers", "assigned_driver_id", "started_at", "flagged_at")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_AT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    phase: MatchingPhase
    mode: MatchingMode
    round: int
    radius_m: int
    offers: _containers.RepeatedCompositeFieldContainer[OfferRecord]
    assigned_driver_id: str
    started_at: _timestamp_pb2.Timestamp
    flagged_at: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., phase: _Optional[_Union[MatchingPhase, str]] = ..., mode: _Optional[_Union[MatchingMode, str]] = ..., round: _Optional[int] = ..., radius_m: _Optional[int] = ..., offers: _Optional[_Iterable[_Union[OfferRecord, _Mapping]]] = ..., assigned_driver_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., flagged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FlaggedOrder(_message.Message):
    __slots__ = ("order_id", "restaurant_id", "restaurant_name", "city", "status", "rounds", "flagged_at")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_NAME_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_AT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    restaurant_id: str
    restaurant_name: str
    city: str
    status: _common_pb2.OrderStatus
    rounds: int
    flagged_at: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., restaurant_id: _Optional[str] = ..., restaurant_name: _Optional[str] = ..., city: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., rounds: _Optional[int] = ..., flagged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListFlaggedOrdersRequest(_message.Message):
    __slots__ = ("city", "page_size", "page_token")
    CITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    city: str
    page_size: int
    page_token: str
    def __init__(self, city: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlaggedOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[FlaggedOrder]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[FlaggedOrder, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
