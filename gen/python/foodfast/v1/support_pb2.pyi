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

class ConversationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_STATUS_UNSPECIFIED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_OPEN: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_CLOSED: _ClassVar[ConversationStatus]
CONVERSATION_STATUS_UNSPECIFIED: ConversationStatus
CONVERSATION_STATUS_OPEN: ConversationStatus
CONVERSATION_STATUS_CLOSED: ConversationStatus

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "customer_id", "order_id", "subject", "status", "agent_id", "last_seq", "created_at", "last_activity_at")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_AT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    customer_id: str
    order_id: str
    subject: str
    status: ConversationStatus
    agent_id: str
    last_seq: int
    created_at: _timestamp_pb2.Timestamp
    last_activity_at: _timestamp_pb2.Timestamp
    def __init__(self, conversation_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., order_id: _Optional[str] = ..., subject: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., agent_id: _Optional[str] = ..., last_seq: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_activity_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("message_id", "conversation_id", "seq", "sender_id", "sender_role", "sender_name", "text", "client_message_id", "sent_at")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ROLE_FIELD_NUMBER: _ClassVar[int]
    SENDER_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_role: _common_pb2.Role
    sender_name: str
    text: str
    client_message_id: str
    sent_at: _timestamp_pb2.Timestamp
    def __init__(self, message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., seq: _Optional[int] = ..., sender_id: _Optional[str] = ..., sender_role: _Optional[_Union[_common_pb2.Role, str]] = ..., sender_name: _Optional[str] = ..., text: _Optional[str] = ..., client_message_id: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OpenConversation(_message.Message):
    __slots__ = ("conversation_id", "order_id", "subject", "after_seq")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    order_id: str
    subject: str
    after_seq: int
    def __init__(self, conversation_id: _Optional[str] = ..., order_id: _Optional[str] = ..., subject: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class SendChatMessage(_message.Message):
    __slots__ = ("client_message_id", "text")
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    client_message_id: str
    text: str
    def __init__(self, client_message_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TypingIndicator(_message.Message):
    __slots__ = ("typing", "account_id")
    TYPING_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    typing: bool
    account_id: str
    def __init__(self, typing: _Optional[bool] = ..., account_id: _Optional[str] = ...) -> None: ...

class CloseConversation(_message.Message):
    __slots__ = ("note",)
    NOTE_FIELD_NUMBER: _ClassVar[int]
    note: str
    def __init__(self, note: _Optional[str] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("open", "send", "typing", "close")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    open: OpenConversation
    send: SendChatMessage
    typing: TypingIndicator
    close: CloseConversation
    def __init__(self, open: _Optional[_Union[OpenConversation, _Mapping]] = ..., send: _Optional[_Union[SendChatMessage, _Mapping]] = ..., typing: _Optional[_Union[TypingIndicator, _Mapping]] = ..., close: _Optional[_Union[CloseConversation, _Mapping]] = ...) -> None: ...

class ChatMessageRejected(_message.Message):
    __slots__ = ("client_message_id", "reason")
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_message_id: str
    reason: str
    def __init__(self, client_message_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("conversation", "message", "typing", "rejected", "heartbeat")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    message: ChatMessage
    typing: TypingIndicator
    rejected: ChatMessageRejected
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., message: _Optional[_Union[ChatMessage, _Mapping]] = ..., typing: _Optional[_Union[TypingIndicator, _Mapping]] = ..., rejected: _Optional[_Union[ChatMessageRejected, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("status", "order_id", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: ConversationStatus
    order_id: str
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[ConversationStatus, str]] = ..., order_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("conversations", "next_page_token")
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    next_page_token: str
    def __init__(self, conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetConversationHistoryRequest(_message.Message):
    __slots__ = ("conversation_id", "page_size", "page_token")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    page_size: int
    page_token: str
    def __init__(self, conversation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetConversationHistoryResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
