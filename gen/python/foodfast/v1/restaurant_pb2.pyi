import datetime

from foodfast.v1 import common_pb2 as _common_pb2
from foodfast.v1 import order_pb2 as _order_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Weekday(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEEKDAY_UNSPECIFIED: _ClassVar[Weekday]
    WEEKDAY_MONDAY: _ClassVar[Weekday]
    WEEKDAY_TUESDAY: _ClassVar[Weekday]
    WEEKDAY_WEDNESDAY: _ClassVar[Weekday]
    WEEKDAY_THURSDAY: _ClassVar[Weekday]
    WEEKDAY_FRIDAY: _ClassVar[Weekday]
    WEEKDAY_SATURDAY: _ClassVar[Weekday]
    WEEKDAY_SUNDAY: _ClassVar[Weekday]
WEEKDAY_UNSPECIFIED: Weekday
WEEKDAY_MONDAY: Weekday
WEEKDAY_TUESDAY: Weekday
WEEKDAY_WEDNESDAY: Weekday
WEEKDAY_THURSDAY: Weekday
WEEKDAY_FRIDAY: Weekday
WEEKDAY_SATURDAY: Weekday
WEEKDAY_SUNDAY: Weekday

class OpeningPeriod(_message.Message):
    __slots__ = ("day", "opens_at", "closes_at")
    DAY_FIELD_NUMBER: _ClassVar[int]
    OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_FIELD_NUMBER: _ClassVar[int]
    day: Weekday
    opens_at: str
    closes_at: str
    def __init__(self, day: _Optional[_Union[Weekday, str]] = ..., opens_at: _Optional[str] = ..., closes_at: _Optional[str] = ...) -> None: ...

class RestaurantProfile(_message.Message):
    __slots__ = ("name", "address", "cuisines", "phone", "time_zone", "opening_hours", "delivery_radius_m", "average_prep_time", "currency_code", "paused")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CUISINES_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    OPENING_HOURS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PREP_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: _common_pb2.Address
    cuisines: _containers.RepeatedScalarFieldContainer[str]
    phone: str
    time_zone: str
    opening_hours: _containers.RepeatedCompositeFieldContainer[OpeningPeriod]
    delivery_radius_m: int
    average_prep_time: _duration_pb2.Duration
    currency_code: str
    paused: bool
    def __init__(self, name: _Optional[str] = ..., address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., cuisines: _Optional[_Iterable[str]] = ..., phone: _Optional[str] = ..., time_zone: _Optional[str] = ..., opening_hours: _Optional[_Iterable[_Union[OpeningPeriod, _Mapping]]] = ..., delivery_radius_m: _Optional[int] = ..., average_prep_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., currency_code: _Optional[str] = ..., paused: _Optional[bool] = ...) -> None: ...

class Restaurant(_message.Message):
    __slots__ = ("restaurant_id", "profile", "open_now", "rating", "rating_count", "image_url", "created_at", "updated_at")
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    OPEN_NOW_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    RATING_COUNT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    profile: RestaurantProfile
    open_now: bool
    rating: float
    rating_count: int
    image_url: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, restaurant_id: _Optional[str] = ..., profile: _Optional[_Union[RestaurantProfile, _Mapping]] = ..., open_now: _Optional[bool] = ..., rating: _Optional[float] = ..., rating_count: _Optional[int] = ..., image_url: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RestaurantSearchResult(_message.Message):
    __slots__ = ("restaurant_id", "name", "cuisines", "rating", "delivery_fee", "estimated_delivery_time", "distance_m", "thumbnail_url", "open_now")
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CUISINES_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FEE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DELIVERY_TIME_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URL_FIELD_NUMBER: _ClassVar[int]
    OPEN_NOW_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    name: str
    cuisines: _containers.RepeatedScalarFieldContainer[str]
    rating: float
    delivery_fee: _common_pb2.Money
    estimated_delivery_time: _duration_pb2.Duration
    distance_m: int
    thumbnail_url: str
    open_now: bool
    def __init__(self, restaurant_id: _Optional[str] = ..., name: _Optional[str] = ..., cuisines: _Optional[_Iterable[str]] = ..., rating: _Optional[float] = ..., delivery_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., estimated_delivery_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., distance_m: _Optional[int] = ..., thumbnail_url: _Optional[str] = ..., open_now: _Optional[bool] = ...) -> None: ...

class CustomizationOption(_message.Message):
    __slots__ = ("option_id", "name", "surcharge", "available")
    OPTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SURCHARGE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    option_id: str
    name: str
    surcharge: _common_pb2.Money
    available: bool
    def __init__(self, option_id: _Optional[str] = ..., name: _Optional[str] = ..., surcharge: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., available: _Optional[bool] = ...) -> None: ...

class Customization(_message.Message):
    __slots__ = ("customization_id", "name", "min_choices", "max_choices", "options")
    CUSTOMIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_CHOICES_FIELD_NUMBER: _ClassVar[int]
    MAX_CHOICES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    customization_id: str
    name: str
    min_choices: int
    max_choices: int
    options: _containers.RepeatedCompositeFieldContainer[CustomizationOption]
    def __init__(self, customization_id: _Optional[str] = ..., name: _Optional[str] = ..., min_choices: _Optional[int] = ..., max_choices: _Optional[int] = ..., options: _Optional[_Iterable[_Union[CustomizationOption, _Mapping]]] = ...) -> None: ...

class MenuItem(_message.Message):
    __slots__ = ("item_id", "name", "description", "price", "available", "image_url", "customizations")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMIZATIONS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    name: str
    description: str
    price: _common_pb2.Money
    available: bool
    image_url: str
    customizations: _containers.RepeatedCompositeFieldContainer[Customization]
    def __init__(self, item_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., available: _Optional[bool] = ..., image_url: _Optional[str] = ..., customizations: _Optional[_Iterable[_Union[Customization, _Mapping]]] = ...) -> None: ...

class MenuCategory(_message.Message):
    __slots__ = ("category_id", "name", "items")
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    category_id: str
    name: str
    items: _containers.RepeatedCompositeFieldContainer[MenuItem]
    def __init__(self, category_id: _Optional[str] = ..., name: _Optional[str] = ..., items: _Optional[_Iterable[_Union[MenuItem, _Mapping]]] = ...) -> None: ...

class CreateRestaurantRequest(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: RestaurantProfile
    def __init__(self, profile: _Optional[_Union[RestaurantProfile, _Mapping]] = ...) -> None: ...

class CreateRestaurantResponse(_message.Message):
    __slots__ = ("restaurant",)
    RESTAURANT_FIELD_NUMBER: _ClassVar[int]
    restaurant: Restaurant
    def __init__(self, restaurant: _Optional[_Union[Restaurant, _Mapping]] = ...) -> None: ...

class UpdateRestaurantRequest(_message.Message):
    __slots__ = ("restaurant_id", "profile", "update_mask")
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    profile: RestaurantProfile
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, restaurant_id: _Optional[str] = ..., profile: _Optional[_Union[RestaurantProfile, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateRestaurantResponse(_message.Message):
    __slots__ = ("restaurant",)
    RESTAURANT_FIELD_NUMBER: _ClassVar[int]
    restaurant: Restaurant
    def __init__(self, restaurant: _Optional[_Union[Restaurant, _Mapping]] = ...) -> None: ...

class GetRestaurantRequest(_message.Message):
    __slots__ = ("restaurant_id",)
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    def __init__(self, restaurant_id: _Optional[str] = ...) -> None: ...

class GetRestaurantResponse(_message.Message):
    __slots__ = ("restaurant",)
    RESTAURANT_FIELD_NUMBER: _ClassVar[int]
    restaurant: Restaurant
    def __init__(self, restaurant: _Optional[_Union[Restaurant, _Mapping]] = ...) -> None: ...

class SearchNearbyRequest(_message.Message):
    __slots__ = ("lat", "lng", "radius_m", "cuisine", "open_now", "page_size", "page_token")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    CUISINE_FIELD_NUMBER: _ClassVar[int]
    OPEN_NOW_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lng: float
    radius_m: int
    cuisine: str
    open_now: bool
    page_size: int
    page_token: str
    def __init__(self, lat: _Optional[float] = ..., lng: _Optional[float] = ..., radius_m: _Optional[int] = ..., cuisine: _Optional[str] = ..., open_now: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchNearbyResponse(_message.Message):
    __slots__ = ("restaurants", "next_page_token")
    RESTAURANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    restaurants: _containers.RepeatedCompositeFieldContainer[RestaurantSearchResult]
    next_page_token: str
    def __init__(self, restaurants: _Optional[_Iterable[_Union[RestaurantSearchResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetMenuRequest(_message.Message):
    __slots__ = ("restaurant_id",)
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    def __init__(self, restaurant_id: _Optional[str] = ...) -> None: ...

class GetMenuResponse(_message.Message):
    __slots__ = ("restaurant", "categories", "menu_version", "menu_updated_at")
    RESTAURANT_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    MENU_VERSION_FIELD_NUMBER: _ClassVar[int]
    MENU_UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    restaurant: Restaurant
    categories: _containers.RepeatedCompositeFieldContainer[MenuCategory]
    menu_version: str
    menu_updated_at: _timestamp_pb2.Timestamp
    def __init__(self, restaurant: _Optional[_Union[Restaurant, _Mapping]] = ..., categories: _Optional[_Iterable[_Union[MenuCategory, _Mapping]]] = ..., menu_version: _Optional[str] = ..., menu_updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertMenuRequest(_message.Message):
    __slots__ = ("restaurant_id", "categories", "expected_menu_version")
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MENU_VERSION_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    categories: _containers.RepeatedCompositeFieldContainer[MenuCategory]
    expected_menu_version: str
    def __init__(self, restaurant_id: _Optional[str] = ..., categories: _Optional[_Iterable[_Union[MenuCategory, _Mapping]]] = ..., expected_menu_version: _Optional[str] = ...) -> None: ...

class UpsertMenuResponse(_message.Message):
    __slots__ = ("categories", "menu_version", "menu_updated_at")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    MENU_VERSION_FIELD_NUMBER: _ClassVar[int]
    MENU_UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedCompositeFieldContainer[MenuCategory]
    menu_version: str
    menu_updated_at: _timestamp_pb2.Timestamp
    def __init__(self, categories: _Optional[_Iterable[_Union[MenuCategory, _Mapping]]] = ..., menu_version: _Optional[str] = ..., menu_updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchOrdersRequest(_message.Message):
    __slots__ = ("restaurant_id", "after_cursor")
    RESTAURANT_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    restaurant_id: str
    after_cursor: str
    def __init__(self, restaurant_id: _Optional[str] = ..., after_cursor: _Optional[str] = ...) -> None: ...

class RestaurantOrderChange(_message.Message):
    __slots__ = ("event", "order")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    event: _common_pb2.OrderEvent
    order: _order_pb2.Order
    def __init__(self, event: _Optional[_Union[_common_pb2.OrderEvent, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class WatchOrdersCaughtUp(_message.Message):
    __slots__ = ("open_orders",)
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    open_orders: int
    def __init__(self, open_orders: _Optional[int] = ...) -> None: ...

class WatchOrdersResponse(_message.Message):
    __slots__ = ("cursor", "snapshot", "change", "caught_up", "heartbeat")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    snapshot: _order_pb2.Order
    change: RestaurantOrderChange
    caught_up: WatchOrdersCaughtUp
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, cursor: _Optional[str] = ..., snapshot: _Optional[_Union[_order_pb2.Order, _Mapping]] = ..., change: _Optional[_Union[RestaurantOrderChange, _Mapping]] = ..., caught_up: _Optional[_Union[WatchOrdersCaughtUp, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...

class UpdateOrderStatusRequest(_message.Message):
    __slots__ = ("order_id", "status", "reason", "prep_time")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREP_TIME_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: str
    reason: str
    prep_time: _duration_pb2.Duration
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., prep_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class UpdateOrderStatusResponse(_message.Message):
    __slots__ = ("order_id", "status", "seq")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: _common_pb2.OrderStatus
    seq: int
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.OrderStatus, str]] = ..., seq: _Optional[int] = ...) -> None: ...
