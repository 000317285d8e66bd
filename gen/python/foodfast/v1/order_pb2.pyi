import datetime

from foodfast.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CustomizationChoice(_message.Message):
    __slots__ = ("customization_id", "option_ids")
    CUSTOMIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    OPTION_IDS_FIELD_NUMBER: _ClassVar[int]
    customization_id: str
    option_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, customization_id: _Optional[str] = ..., option_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CartItem(_message.Message):
    __slots__ = ("item_id", "quantity", "customizations", "note")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMIZATIONS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    quantity: int
    customizations: _containers.RepeatedCompositeFieldContainer[CustomizationChoice]
    note: str
    def __init__(self, item_id: _Optional[str] = ..., quantity: _Optional[int] = ..., customizations: _Optional[_Iterable[_Union[CustomizationChoice, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class SelectedOption(_message.Message):
    __slots__ = ("customization_id", "customization_name", "option_id", "option_name", "surcharge")
    CUSTOMIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMIZATION_NAME_FIELD_NUMBER: _ClassVar[int]
    OPTION_ID_FIELD_NUMBER: _ClassVar[int]
    OPTION_NAME_FIELD_NUMBER: _ClassVar[int]
    SURCHARGE_FIELD_NUMBER: _ClassVar[int]
    customization_id: str
    customization_name: str
    option_id: str
    option_name: str
    surcharge: _common_pb2.Money
    def __init__(self, customization_id: _Optional[str] = ..., customization_name: _Optional[str] = ..., option_id: _Optional[str] = ..., option_name: _Optional[str] = ..., surcharge: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("item_id", "name", "quantity", "unit_price", "options", "note", "line_total")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    LINE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    name: str
    quantity: int
    unit_price: _common_pb2.Money
    options: _containers.RepeatedCompositeFieldContainer[SelectedOption]
    note: str
    line_total: _common_pb2.Money
    def __init__(self, item_id: _Optional[str] = ..., name: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., options: _Optional[_Iterable[_Union[SelectedOption, _Mapping]]] = ..., note: _Optional[str] = ..., line_total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class PriceBreakdown(_message.Message):
    __slots__ = ("subtotal", "delivery_fee", "tax", "total")
    SUBTOTAL_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FEE_FIELD_NUMBER: _ClassVar[int]
    TAX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    subtotal: _common_pb2.Money
    delivery_fee: _common_pb2.Money
    tax: _common_pb2.Money
    total: _common_pb2.Money
    def __init__(self, subtotal: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., delivery_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., tax: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "customer_id", "customer_name", "restaurant_id", "restaurant_name", "restaurant_address", "status", "items", "price", "delivery_address", "customer_note", "driver", "estimated_delivery", "estimated_ready_at", "history", "last_event_seq", "created_at", "updated_at")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_NAME_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NOTE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_READY_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    customer_name: str
    restaurant_id: str
    restaurant_name: str
    restaurant_address: _common_pb2.Address
    status: _common_pb2.OrderStatus
    items: _containers.RepeatedCompositeFieldContainer[OrderLine]
    price: PriceBreakdown
    delivery_address: _common_pb2.Address
    customer_note: str
    driver: _common_pb2.DriverSummary
    estimated_delivery: _common_pb2.EtaWindow
    estimated_ready_at: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[_common_pb2.OrderEvent]
    last_event_seq: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., customer_name: _Optional[str] = ..., restaurant_id: _Optional[str] = ..., restaurant_name: _Optional[str] = ..., restaurant_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., items: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., price: _Optional[_Union[PriceBreakdown, _Mapping]] = ..., delivery_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., customer_note: _Optional[str] = ..., driver: _Optional[_Union[_common_pb2.DriverSummary, _Mapping]] = ..., estimated_delivery: _Optional[_Union[_common_pb2.EtaWindow, _Mapping]] = ..., estimated_ready_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[_common_pb2.OrderEvent, _Mapping]]] = ..., last_event_seq: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("restaurant_id", "items", "delivery_address")
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    items: _containers.RepeatedCompositeFieldContainer[CartItem]
    delivery_address: _common_pb2.Address
    def __init__(self, restaurant_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[CartItem, _Mapping]]] = ..., delivery_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("items", "price", "estimated_delivery", "delivery_distance_m", "quoted_at")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    QUOTED_AT_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[OrderLine]
    price: PriceBreakdown
    estimated_delivery: _common_pb2.EtaWindow
    delivery_distance_m: int
    quoted_at: _timestamp_pb2.Timestamp
    def __init__(self, items: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., price: _Optional[_Union[PriceBreakdown, _Mapping]] = ..., estimated_delivery: _Optional[_Union[_common_pb2.EtaWindow, _Mapping]] = ..., delivery_distance_m: _Optional[int] = ..., quoted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ("idempotency_key", "restaurant_id", "items", "delivery_address", "payment_method_id", "customer_note")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NOTE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    restaurant_id: str
    items: _containers.RepeatedCompositeFieldContainer[CartItem]
    delivery_address: _common_pb2.Address
    payment_method_id: str
    customer_note: str
    def __init__(self, idempotency_key: _Optional[str] = ..., restaurant_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[CartItem, _Mapping]]] = ..., delivery_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., payment_method_id: _Optional[str] = ..., customer_note: _Optional[str] = ...) -> None: ...

class CreateOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...
