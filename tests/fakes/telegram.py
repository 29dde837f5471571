"""In-process fake of the Telegram Bot API, served over real HTTP on 127.0.0.1.

aiogram is pointed at it with
``AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))`` and talks to it exactly as
to ``api.telegram.org``: ``POST {base_url}/bot{token}/{method}``.

Transport
    * Parameters are merged from the query string and the body; the body wins. The body may be
      ``application/x-www-form-urlencoded`` (what aiogram actually sends when there is no file),
      ``multipart/form-data`` (aiogram with an uploaded file) or ``application/json``.
    * Form values are strings. aiogram JSON-encodes everything that is not a ``str``
      (``"123"``, ``"true"``, ``'{"inline_keyboard": ...}'``), so every value is JSON-decoded
      except for parameters that are strings in the Bot API (``text``, ``caption``,
      ``callback_query_id``, ``payload``...), which are kept verbatim.
    * aiogram drops parameters whose value is ``None`` or ``""``: an empty ``text`` arrives as
      no ``text`` at all, which this fake (like Telegram) answers with "message text is empty".
    * Answers are the Bot API envelope ``{"ok": true, "result": ...}`` or
      ``{"ok": false, "error_code": N, "description": ..., "parameters": {...}}`` with the
      same HTTP status. A wrong token answers 401 "Unauthorized".
    * Method names are matched case-insensitively, like Telegram.

Request pipeline
    1. The request is recorded in :attr:`FakeTelegram.calls` (even when it then fails).
    2. Token check, then errors injected with :meth:`FakeTelegram.flood` /
       :meth:`FakeTelegram.fail` (consumed in order; the call has no effect).
    3. The method itself: the chat is resolved ("chat not found"), the content validated
       (text, HTML, keyboard), then the blocked check (403), then the effect.

Choices made where Telegram is lenient or undocumented
    * HTML is parsed strictly by the Bot API documentation: a ``&`` that does not start one of
      ``&amp; &lt; &gt; &quot;`` or a numeric entity is an error (real Telegram keeps it as a
      literal). A bare ``>`` is accepted, as Telegram does.
    * Text length is the parsed (plain) text measured in UTF-16 code units, as Telegram does
      (an emoji may count 2).
    * ``MarkdownV2``/``Markdown`` are accepted but not parsed (``plain`` is the raw text).
    * Only inline keyboards are echoed in returned Message objects (like Telegram); a reply
      keyboard is remembered as :attr:`FakeUser.keyboard`.
    * :meth:`FakeUser.send` from a blocked user unblocks it (the "Restart" button).
    * Concurrent ``getUpdates``: the older request is answered 409 Conflict, like Telegram.
    * Webhooks (``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``): see "Webhook delivery".
    * Payments: one invoice can be checked out several times before any payment completes
      (:meth:`FakeUser.checkout`, then :meth:`FakeUser.complete` for each approved one), and
      each completion is a new charge. A refund sends the payer's chat a ``refunded_payment``
      message: always when Telegram refunds by itself (:meth:`FakeTelegram.refund_payment`),
      and after the bot's own ``refundStarPayment`` only with ``announce_refunds`` set (the
      Bot API does not say whether it does).

Webhook delivery
    * ``setWebhook`` takes ``url``, ``secret_token`` (1-256 of ``A-Za-z0-9_-``, else 400),
      ``allowed_updates`` (kept from the previous call when absent, as Telegram does),
      ``drop_pending_updates`` and ``max_connections`` (reported, not enforced). An empty
      ``url`` removes the webhook. Unlike Telegram, ``http://`` URLs and any port are
      accepted (tests listen on 127.0.0.1 without TLS).
    * While a webhook is set, ``getUpdates`` answers 409 Conflict (a long poll running when it
      is set is ended with 409 too); ``deleteWebhook`` brings ``getUpdates`` back.
    * Pending and new updates are POSTed as JSON with ``X-Telegram-Bot-Api-Secret-Token``
      (when a secret is set), oldest first; an update of a type outside ``allowed_updates``
      is dropped. A non-2xx answer, a refused connection or a timeout
      (:attr:`FakeTelegram.webhook_timeout`) is retried with the same ``update_id`` after
      a backoff (:attr:`FakeTelegram.webhook_retry_delay` doubling up to
      :attr:`FakeTelegram.webhook_retry_max`), and later updates wait behind it; the error is
      reported by ``getWebhookInfo`` (``last_error_date``, ``last_error_message``).
    * One request at a time per target (:attr:`FakeTelegram.webhook_connections` allows
      more, as Telegram's ``max_connections`` does: benchmarks use it).
      :meth:`FakeTelegram.route_webhook` puts several targets behind the one webhook URL, as a
      reverse proxy in front of several instances would: each update (each retry too) goes to
      the next free target, round-robin, so up to ``webhook_connections`` updates per target
      are in flight (:meth:`FakeTelegram.delivering` tells where one is). Every attempt is
      recorded in :attr:`FakeTelegram.deliveries`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import itertools
import json
import logging
import os
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import aiohttp
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

__all__ = [
    "Call",
    "CallbackAnswer",
    "Charge",
    "Checkout",
    "Delivery",
    "FakeTelegram",
    "FakeUser",
    "Message",
    "PaymentResult",
    "TelegramError",
    "UploadedFile",
    "parse_html",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Params = dict[str, Any]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

BAD_REQUEST = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
NOT_FOUND = 404
CONFLICT = 409
TOO_MANY_REQUESTS = 429
INTERNAL_ERROR = 500

ERR_TEXT_EMPTY = "Bad Request: message text is empty"
ERR_TEXT_TOO_LONG = "Bad Request: message is too long"
ERR_CAPTION_TOO_LONG = "Bad Request: message caption is too long"
ERR_BUTTON_DATA = "Bad Request: BUTTON_DATA_INVALID"
ERR_TEXT_BUTTON = (
    "Bad Request: can't parse inline keyboard button: "
    "Text buttons are unallowed in the inline keyboard"
)
ERR_MARKUP_JSON = "Bad Request: can't parse reply keyboard markup JSON object"
ERR_PARSE_PREFIX = "Bad Request: can't parse entities: "
ERR_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
ERR_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
ERR_DELETE_NOT_FOUND = "Bad Request: message to delete not found"
ERR_COPY_NOT_FOUND = "Bad Request: message to copy not found"
ERR_CANT_EDIT = "Bad Request: message can't be edited"
ERR_NO_TEXT_TO_EDIT = "Bad Request: there is no text in the message to edit"
ERR_NO_CAPTION_TO_EDIT = "Bad Request: there is no caption in the message to edit"
ERR_QUERY_INVALID = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
ERR_CHAT_NOT_FOUND = "Bad Request: chat not found"
ERR_CHAT_ID_EMPTY = "Bad Request: chat_id is empty"
ERR_MESSAGE_ID_EMPTY = "Bad Request: message_id is empty"
ERR_BLOCKED = "Forbidden: bot was blocked by the user"
ERR_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
ERR_UNSUPPORTED_PARSE_MODE = "Bad Request: unsupported parse_mode"
ERR_WRONG_ACTION = "Bad Request: wrong parameter action in request"
ERR_COMMAND_INVALID = "Bad Request: BOT_COMMAND_INVALID"
ERR_COMMAND_DESCRIPTION_INVALID = "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
ERR_CHARGE_NOT_FOUND = "Bad Request: CHARGE_NOT_FOUND"
ERR_CHARGE_REFUNDED = "Bad Request: CHARGE_ALREADY_REFUNDED"
ERR_USER_NOT_FOUND = "Bad Request: user not found"
ERR_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
ERR_TERMINATED_BY_WEBHOOK = "Conflict: terminated by setWebhook request"
ERR_BAD_WEBHOOK_URL = "Bad Request: bad webhook: invalid webhook URL specified"
ERR_SECRET_TOKEN = "Bad Request: secret token contains unallowed characters"

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What a webhook receives when allowed_updates is empty or was never given (Telegram's rule).
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")

# Bot API parameters whose type is String: never JSON-decoded even if they look like JSON.
_STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "caption",
        "callback_query_id",
        "currency",
        "custom_emoji_id",
        "data",
        "description",
        "document",
        "emoji",
        "error_message",
        "explanation",
        "file_id",
        "first_name",
        "foursquare_id",
        "inline_message_id",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "parse_mode",
        "payload",
        "phone_number",
        "photo",
        "pre_checkout_query_id",
        "provider_data",
        "provider_token",
        "query",
        "question",
        "secret_token",
        "shipping_query_id",
        "short_description",
        "start_parameter",
        "sticker",
        "switch_pm_parameter",
        "telegram_payment_charge_id",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")

# New outgoing messages, which FakeTelegram.limit_rate counts (edits and answers do not).
_RATE_LIMITED_METHODS = frozenset(
    {"sendmessage", "sendphoto", "senddocument", "copymessage", "forwardmessage", "sendinvoice"}
)


# --------------------------------------------------------------------------------------------
# Errors and records
# --------------------------------------------------------------------------------------------


class TelegramError(Exception):
    """An error answer of the Bot API (``ok: false``)."""

    def __init__(
        self, error_code: int, description: str, parameters: Params | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def body(self) -> Params:
        """Return the JSON body Telegram sends for this error."""
        body: Params = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(description: str) -> TelegramError:
    return TelegramError(BAD_REQUEST, description)


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass
class Call:
    """One request received by the fake, with JSON-encoded fields decoded."""

    method: str
    params: Params
    files: dict[str, UploadedFile] = field(default_factory=dict)
    response: Params | None = None

    @property
    def ok(self) -> bool:
        """Whether the fake answered ``ok: true``."""
        return bool(self.response and self.response.get("ok"))


@dataclass(frozen=True)
class Delivery:
    """One webhook POST the fake made: to which target, and how it ended."""

    update_id: int
    target: str
    status: int | None  # the HTTP status; None when no answer came (refused, reset, timeout)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    max_connections: int


@dataclass(frozen=True)
class CallbackAnswer:
    """One answerCallbackQuery call."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None = None
    cache_time: int = 0


@dataclass
class Charge:
    """A successful (fake) Telegram Stars payment."""

    charge_id: str
    user_id: int
    currency: str
    total_amount: int
    invoice_payload: str
    refunded: bool = False


@dataclass
class Checkout:
    """A pre-checkout query of :meth:`FakeUser.checkout` and the bot's verdict on it."""

    query_id: str
    invoice: Params
    ok: bool
    error_message: str | None = None


@dataclass
class PaymentResult:
    """Outcome of :meth:`FakeUser.pay`."""

    ok: bool
    error_message: str | None = None
    charge_id: str | None = None
    message: Message | None = None
    update_id: int | None = None  # the update that carried the successful_payment


@dataclass(eq=False)
class Message:
    """A message in a private chat, kept current: edits mutate the same object."""

    message_id: int
    chat_id: int
    text: str
    parse_mode: str | None = None
    plain: str = ""
    reply_markup: Params | None = None
    edits: int = 0
    kind: str = "text"
    from_bot: bool = True
    entities: list[Params] = field(default_factory=list)
    date: int = field(default_factory=lambda: int(time.time()))
    edit_date: int | None = None
    deleted: bool = False
    media: Params = field(default_factory=dict)
    file: UploadedFile | None = None
    invoice: Params | None = None

    @property
    def buttons(self) -> list[list[tuple[str, str | None]]]:
        """Rows of ``(text, callback_data or url)``; reply-keyboard buttons give ``None``."""
        rows = _keyboard_rows(self.reply_markup)
        return [[(b.get("text", ""), _button_target(b)) for b in row] for row in rows]

    @property
    def button_texts(self) -> list[str]:
        """All button texts, flattened in reading order."""
        return [text for row in self.buttons for text, _ in row]

    @property
    def inline_buttons(self) -> list[Params]:
        """The raw inline keyboard buttons, flattened."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard") or []
        return [button for row in rows for button in row]


def _keyboard_rows(markup: Params | None) -> list[list[Params]]:
    if not markup:
        return []
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    return [[b if isinstance(b, dict) else {"text": str(b)} for b in row] for row in rows]


def _button_target(button: Params) -> str | None:
    if "callback_data" in button:
        return str(button["callback_data"])
    if "url" in button:
        return str(button["url"])
    web_app = button.get("web_app")
    if isinstance(web_app, dict):
        return web_app.get("url")
    return None


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram counts in."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# HTML parse mode
# --------------------------------------------------------------------------------------------

_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY_RE = re.compile(r"&(?:(amp|lt|gt|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}
_TEXT_RUN_RE = re.compile(r"[^<&]+")


@dataclass
class _OpenTag:
    name: str
    offset: int
    attrs: dict[str, str]
    language: str | None = None


class _HtmlParser:
    """A strict re-implementation of Telegram's HTML parse mode."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.out: list[str] = []
        self.offset = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[Params] = []

    def parse(self) -> tuple[str, list[Params]]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "&":
                self._entity()
            elif char == "<" and text.startswith("</", self.pos):
                self._end_tag()
            elif char == "<":
                self._start_tag()
            else:
                run = _TEXT_RUN_RE.match(text, self.pos)
                assert run is not None
                self._emit(run.group())
                self.pos = run.end()
        if self.stack:
            self._fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _fail(self, message: str) -> NoReturn:
        raise _bad_request(ERR_PARSE_PREFIX + message)

    def _byte_offset(self, pos: int) -> int:
        return len(self.text[:pos].encode("utf-8"))

    def _emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.offset += utf16_len(chunk)

    def _entity(self) -> None:
        match = _HTML_ENTITY_RE.match(self.text, self.pos)
        if match is None:
            self._fail(
                f'Character "&" must be escaped as "&amp;" at byte offset '
                f"{self._byte_offset(self.pos)}"
            )
        self._emit(_decode_entity(match))
        self.pos = match.end()

    def _skip_spaces(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        return pos

    def _start_tag(self) -> None:
        text, begin = self.text, self.pos
        pos = begin + 1
        while pos < len(text) and not text[pos].isspace() and text[pos] != ">":
            pos += 1
        if pos >= len(text):
            self._fail(f"Unclosed start tag at byte offset {self._byte_offset(begin)}")
        name = text[begin + 1 : pos].lower()
        if name not in _TAG_ENTITY:
            self._fail(f'Unsupported start tag "{name}" at byte offset {self._byte_offset(begin)}')
        attrs, self.pos = self._attributes(name, begin, pos)
        self._open(name, attrs, begin)

    def _attributes(self, tag: str, begin: int, pos: int) -> tuple[dict[str, str], int]:
        text = self.text
        attrs: dict[str, str] = {}
        while True:
            pos = self._skip_spaces(pos)
            if pos >= len(text):
                self._fail(f"Unclosed start tag at byte offset {self._byte_offset(begin)}")
            if text[pos] == ">":
                return attrs, pos + 1
            end = pos
            while end < len(text) and (text[end].isalnum() or text[end] in "-_"):
                end += 1
            if end == pos:
                self._fail(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{self._byte_offset(pos)}"
                )
            attr = text[pos:end].lower()
            pos = self._skip_spaces(end)
            value = ""
            if pos < len(text) and text[pos] == "=":
                value, pos = self._attribute_value(begin, self._skip_spaces(pos + 1))
            attrs[attr] = value

    def _attribute_value(self, begin: int, pos: int) -> tuple[str, int]:
        text = self.text
        if pos >= len(text):
            self._fail(f"Unclosed start tag at byte offset {self._byte_offset(begin)}")
        if text[pos] in "\"'":
            end = text.find(text[pos], pos + 1)
            if end < 0:
                self._fail(
                    f"Unclosed end of attribute value at byte offset {self._byte_offset(pos)}"
                )
            return _HTML_ENTITY_RE.sub(_decode_entity, text[pos + 1 : end]), end + 1
        end = pos
        while end < len(text) and not text[end].isspace() and text[end] != ">":
            end += 1
        return _HTML_ENTITY_RE.sub(_decode_entity, text[pos:end]), end

    def _open(self, name: str, attrs: dict[str, str], begin: int) -> None:
        where = f"at byte offset {self._byte_offset(begin)}"
        if name == "span" and attrs.get("class") != "tg-spoiler":
            self._fail(f'Tag "span" must have class "tg-spoiler" {where}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            self._fail(f'Custom emoji identifier must be specified for tag "tg-emoji" {where}')
        self.stack.append(_OpenTag(name=name, offset=self.offset, attrs=attrs))

    def _end_tag(self) -> None:
        text, begin = self.text, self.pos
        pos = begin + 2
        while pos < len(text) and not text[pos].isspace() and text[pos] != ">":
            pos += 1
        name = text[begin + 2 : pos].lower()
        pos = self._skip_spaces(pos)
        where = f"at byte offset {self._byte_offset(begin)}"
        if pos >= len(text) or text[pos] != ">":
            self._fail(f"Unclosed end tag {where}")
        if not self.stack:
            self._fail(f"Unexpected end tag {where}")
        top = self.stack[-1]
        if name != top.name:
            self._fail(f'Unmatched end tag {where}, expected "</{top.name}>", found "</{name}>"')
        self.stack.pop()
        self.pos = pos + 1
        self._close(top)

    def _close(self, tag: _OpenTag) -> None:
        length = self.offset - tag.offset
        language = tag.attrs.get("class", "")
        parent = self.stack[-1] if self.stack else None
        if tag.name == "code" and parent is not None and parent.name == "pre":
            if language.startswith("language-") and parent.offset == tag.offset:
                parent.language = language.removeprefix("language-")
                return
        if length <= 0:
            return
        entity: Params = {"type": _TAG_ENTITY[tag.name], "offset": tag.offset, "length": length}
        if tag.name == "a":
            entity.update(_link_entity(tag.attrs.get("href", "")))
        elif tag.name == "pre" and tag.language:
            entity["language"] = tag.language
        elif tag.name == "blockquote" and "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
        elif tag.name == "tg-emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def _decode_entity(match: re.Match[str]) -> str:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED_ENTITIES[named]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"


def _link_entity(href: str) -> Params:
    user_link = re.match(r"tg://user\?id=(\d+)$", href)
    if user_link:
        user = {"id": int(user_link.group(1)), "is_bot": False, "first_name": ""}
        return {"type": "text_mention", "user": user}
    return {"url": href}


def parse_html(text: str) -> tuple[str, list[Params]]:
    """Parse Telegram HTML into ``(plain text, entities)``; raise TelegramError if malformed.

    Entity offsets and lengths are in UTF-16 code units, as in the Bot API.
    """
    return _HtmlParser(text).parse()


# --------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------


class _Signal:
    """A broadcast 'something changed' notification for waiters in one event loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


# Every wait gives up after its timeout times this (NUMBOT_TEST_WAIT_SCALE, default 2): a wait
# ends as soon as its condition holds, so room costs nothing when the bot is right, and a
# machine shared with other suites (CI runs four workers on two cores) is not a failure.
WAIT_SCALE = float(os.environ.get("NUMBOT_TEST_WAIT_SCALE", "2"))


async def _wait_until(
    signal: _Signal, check: Callable[[], T | None], seconds: float, describe: Callable[[], str]
) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds * WAIT_SCALE
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(describe())
        await signal.wait(remaining)


class FakeUser:
    """A Telegram user talking to the bot in a private chat (chat id == user id)."""

    def __init__(
        self,
        fake: FakeTelegram,
        user_id: int,
        first_name: str,
        username: str | None,
        language_code: str,
    ) -> None:
        self.id = user_id
        self.first_name = first_name
        self.username = username
        self.language_code = language_code
        self.answers: list[CallbackAnswer] = []
        self.actions: list[str] = []
        self.keyboard: list[list[str]] | None = None
        self._fake = fake
        self._store: dict[int, Message] = {}
        self._message_ids = itertools.count(1)
        self._events: list[tuple[Message, Message]] = []
        self._cursor = 0
        self._signal = _Signal()

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    # -- JSON views --------------------------------------------------------------------------

    def user_json(self) -> Params:
        """The Bot API User object of this user."""
        data: Params = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def chat_json(self) -> Params:
        """The Bot API Chat object of the private chat with this user."""
        data: Params = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        return data

    # -- state -------------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Bot messages in this chat, current state, in send order (deleted ones removed)."""
        return [m for m in self._store.values() if m.from_bot]

    @property
    def last(self) -> Message | None:
        """The last bot message in this chat, or None."""
        messages = self.messages
        return messages[-1] if messages else None

    @property
    def blocked(self) -> bool:
        """Whether this user has blocked the bot."""
        return self.id in self._fake.blocked_users

    def get(self, message_id: int) -> Message | None:
        """Any message (bot's or user's) still present in this chat."""
        return self._store.get(message_id)

    # -- actions -----------------------------------------------------------------------------

    async def send(self, text: str, *, html: bool = False) -> Message:
        """Push an Update with a text message from this user; return the user's message.

        A leading ``/command`` word gets a ``bot_command`` entity. Sending unblocks the bot.
        ``html=True`` parses ``text`` as Telegram HTML into plain text and entities (what a
        client sends for a message typed with bold, links...), so a copy keeps the formatting.
        """
        self._fake.blocked_users.discard(self.id)
        entities: list[Params] = []
        plain = text
        if html:
            plain, entities = parse_html(text)
        elif text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command)})
        message = self._new_message(text=plain, plain=plain, entities=entities, from_bot=False)
        self._fake.push_update({"message": self._fake.message_json(message)})
        return message

    async def send_photo(
        self, caption: str = "", *, html: bool = False, content: bytes = b"\x89PNG fake"
    ) -> Message:
        """Push an Update with a photo from this user, with an optional caption.

        ``html=True`` parses the caption as Telegram HTML into caption entities.
        """
        return self._send_media("photo", caption, html, UploadedFile("photo.jpg", content))

    async def send_document(
        self,
        caption: str = "",
        *,
        html: bool = False,
        filename: str = "file.pdf",
        content: bytes = b"%PDF-1.4 fake",
        content_type: str = "application/pdf",
    ) -> Message:
        """Push an Update with a document from this user, with an optional caption."""
        upload = UploadedFile(filename, content, content_type)
        return self._send_media("document", caption, html, upload)

    def _send_media(self, kind: str, caption: str, html: bool, upload: UploadedFile) -> Message:
        self._fake.blocked_users.discard(self.id)
        plain, entities = parse_html(caption) if html else (caption, [])
        file_id = f"FAKE-{kind}-{next(self._fake._file_ids)}"
        self._fake.files[file_id] = upload
        message = self._new_message(
            text=plain,
            plain=plain,
            entities=entities,
            from_bot=False,
            kind=kind,
            media={kind: _media_json(kind, file_id, upload)},
            file=upload,
        )
        self._fake.push_update({"message": self._fake.message_json(message)})
        return message

    async def click(self, message: Message, button: str) -> str:
        """Press the inline button whose text contains ``button``; return the query id.

        An exact text match wins over substring matches; among substring matches the first
        one (reading order) is pressed. Several exact matches with different data, no match,
        URL buttons and deleted messages raise AssertionError.
        """
        live = self._live_bot_message(message)
        chosen = _choose_button(live, button)
        data = chosen.get("callback_data")
        if data is None:
            raise AssertionError(
                f"button {chosen.get('text')!r} has no callback_data (it is {chosen}); "
                "it cannot be clicked"
            )
        return self._push_callback(live, str(data))

    async def click_data(self, message: Message, data: str) -> str:
        """Push a callback query with arbitrary (possibly forged) data on ``message``."""
        return self._push_callback(self._live_bot_message(message), data)

    async def pay(
        self,
        invoice: Message,
        timeout: float = 10.0,  # noqa: ASYNC109 - public API mirrors wait_for
    ) -> PaymentResult:
        """Pay an invoice message: pre_checkout_query, then (if approved) successful_payment.

        Waits for the bot's answerPreCheckoutQuery. On ``ok`` pushes a service message with
        ``successful_payment`` and records a :class:`Charge` in ``fake.charges``.
        """
        checkout = await self.checkout(invoice, timeout)
        if not checkout.ok:
            return PaymentResult(ok=False, error_message=checkout.error_message)
        return self.complete(checkout)

    async def checkout(
        self,
        invoice: Message,
        timeout: float = 10.0,  # noqa: ASYNC109 - public API mirrors wait_for
    ) -> Checkout:
        """The first half of :meth:`pay`: the pre_checkout_query and the bot's verdict.

        Telegram lets the same invoice be checked out more than once (two taps, two devices)
        while none of the payments has completed; :meth:`complete` finishes each approved one.
        """
        live = self._live_bot_message(invoice)
        if live.invoice is None:
            raise AssertionError(f"message {live.message_id} is not an invoice: {live.plain!r}")
        query_id = self._fake.new_query_id()
        query = {
            "id": query_id,
            "from": self.user_json(),
            "currency": live.invoice["currency"],
            "total_amount": live.invoice["total_amount"],
            "invoice_payload": live.invoice["payload"],
        }
        self._fake.pre_checkouts[query_id] = None
        self._fake.push_update({"pre_checkout_query": query})
        verdict = await _wait_until(
            self._signal,
            lambda: self._fake.pre_checkouts.get(query_id),
            timeout,
            lambda: f"pre_checkout_query {query_id} was not answered within {timeout}s",
        )
        ok, error_message = verdict
        return Checkout(query_id, dict(live.invoice), ok, error_message)

    def complete(self, checkout: Checkout) -> PaymentResult:
        """The second half of :meth:`pay`: Telegram takes the stars of an approved checkout
        (a new :class:`Charge`) and sends the bot the ``successful_payment`` message."""
        if not checkout.ok:
            raise AssertionError(f"checkout {checkout.query_id} was refused; nothing to pay")
        charge = self._fake.new_charge(self.id, checkout.invoice)
        message = self._new_message(text="", plain="", from_bot=False, kind="successful_payment")
        message.media = {"successful_payment": _payment_json(charge)}
        update_id = self._fake.push_update({"message": self._fake.message_json(message)})
        return PaymentResult(
            ok=True, charge_id=charge.charge_id, message=message, update_id=update_id
        )

    def _refunded(self, charge: Charge) -> Message:
        """The ``refunded_payment`` service message Telegram sends when a payment comes back."""
        message = self._new_message(text="", plain="", from_bot=False, kind="refunded_payment")
        message.media = {
            "refunded_payment": {
                "currency": charge.currency,
                "total_amount": charge.total_amount,
                "invoice_payload": charge.invoice_payload,
                "telegram_payment_charge_id": charge.charge_id,
            }
        }
        self._fake.push_update({"message": self._fake.message_json(message)})
        return message

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[Message], bool] | str,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the test-facing API
    ) -> Message:
        """Wait for a bot message (new or just edited) after the cursor matching ``predicate``.

        A str means "plain text contains it". The predicate sees the message as it was right
        after that send/edit; the live (current) Message object is returned (it may have been
        edited or deleted since) and the cursor moves past the matching event. send()/click()
        do not move the cursor.
        """
        check = (lambda m: predicate in m.plain) if isinstance(predicate, str) else predicate

        def find() -> Message | None:
            for index in range(self._cursor, len(self._events)):
                live, snapshot = self._events[index]
                if check(snapshot):
                    self._cursor = index + 1
                    return live
            return None

        return await _wait_until(
            self._signal, find, timeout, lambda: self._describe_timeout(predicate, timeout)
        )

    async def wait_answer(
        self,
        callback_id: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the test-facing API
    ) -> CallbackAnswer:
        """Wait until the bot answers the callback query ``callback_id``."""

        def find() -> CallbackAnswer | None:
            return next((a for a in self.answers if a.callback_query_id == callback_id), None)

        return await _wait_until(
            self._signal,
            find,
            timeout,
            lambda: (
                f"callback query {callback_id} was not answered within {timeout}s; "
                f"answers so far: {self.answers}"
            ),
        )

    def _describe_timeout(self, predicate: Callable[[Message], bool] | str, timeout: float) -> str:
        wanted = (
            repr(predicate)
            if isinstance(predicate, str)
            else getattr(predicate, "__name__", repr(predicate))
        )
        recent = [
            f"  #{live.message_id} {'(edited) ' if snap.edits else ''}{snap.plain[:300]!r}"
            for live, snap in self._events[-6:]
        ]
        unseen = len(self._events) - self._cursor
        return (
            f"user {self.id}: no bot message matching {wanted} within {timeout}s "
            f"({unseen} event(s) after the cursor). Last messages:\n" + "\n".join(recent)
        )

    # -- internals used by FakeTelegram ------------------------------------------------------

    def _new_message(self, **fields: Any) -> Message:
        message = Message(message_id=next(self._message_ids), chat_id=self.id, **fields)
        self._store[message.message_id] = message
        if message.from_bot:
            self._record(message)
            self._remember_keyboard(message.reply_markup)
        return message

    def _record(self, message: Message) -> None:
        self._events.append((message, copy.copy(message)))
        self._signal.fire()

    def _remember_keyboard(self, markup: Params | None) -> None:
        if not markup:
            return
        if "keyboard" in markup:
            rows = _keyboard_rows(markup)
            self.keyboard = [[str(button.get("text", "")) for button in row] for row in rows]
        elif markup.get("remove_keyboard"):
            self.keyboard = None

    def _delete(self, message_id: int) -> bool:
        message = self._store.pop(message_id, None)
        if message is None:
            return False
        message.deleted = True
        self._signal.fire()
        return True

    def _add_answer(self, answer: CallbackAnswer) -> None:
        self.answers.append(answer)
        self._signal.fire()

    def _live_bot_message(self, message: Message) -> Message:
        live = self._store.get(message.message_id)
        if message.chat_id != self.id or live is None or not live.from_bot:
            raise AssertionError(
                f"user {self.id} has no bot message #{message.message_id} "
                f"(chat {message.chat_id}, deleted={message.deleted})"
            )
        return live

    def _push_callback(self, message: Message, data: str) -> str:
        query_id = self._fake.new_query_id()
        self._fake.callbacks[query_id] = (self.id, False)
        query = {
            "id": query_id,
            "from": self.user_json(),
            "message": self._fake.message_json(message),
            "chat_instance": f"{self.id * 7919 % 10**12}",
            "data": data,
        }
        self._fake.push_update({"callback_query": query})
        return query_id


def _choose_button(message: Message, wanted: str) -> Params:
    buttons = message.inline_buttons
    texts = [str(b.get("text", "")) for b in buttons]
    exact = [b for b in buttons if b.get("text") == wanted]
    if len({json.dumps(b, sort_keys=True) for b in exact}) > 1:
        raise AssertionError(
            f"several buttons are exactly {wanted!r} on message #{message.message_id}: {exact}"
        )
    if exact:
        return exact[0]
    partial = [b for b in buttons if wanted in str(b.get("text", ""))]
    if partial:
        return partial[0]
    raise AssertionError(
        f"no button containing {wanted!r} on message #{message.message_id} "
        f"({message.plain[:200]!r}); buttons: {texts}"
    )


def _allowed(update: Params, allowed_updates: list[str] | None) -> bool:
    """Whether a webhook with these ``allowed_updates`` receives ``update``."""
    kinds = set(update) - {"update_id"}
    if allowed_updates:
        return bool(kinds & set(allowed_updates))
    return not kinds & _NOT_BY_DEFAULT


def _payment_json(charge: Charge) -> Params:
    return {
        "currency": charge.currency,
        "total_amount": charge.total_amount,
        "invoice_payload": charge.invoice_payload,
        "telegram_payment_charge_id": charge.charge_id,
        "provider_payment_charge_id": f"provider-{charge.charge_id}",
    }


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

Handler = Callable[[Params, dict[str, UploadedFile]], Awaitable[Any]]


class FakeTelegram:
    """A fake Telegram Bot API server on 127.0.0.1 for aiogram to talk to over real HTTP."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_id: int = 123456,
        bot_username: str = "numbot_test",
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.calls: list[Call] = []
        self.commands: dict[str, list[Params]] = {}
        self.callbacks: dict[str, tuple[int, bool]] = {}
        self.pre_checkouts: dict[str, tuple[bool, str | None] | None] = {}
        self.charges: dict[str, Charge] = {}
        # Also send `refunded_payment` when the bot itself refunds (refundStarPayment).
        self.announce_refunds = False
        self.files: dict[str, UploadedFile] = {}
        self.blocked_users: set[int] = set()
        self.server_errors: list[BaseException] = []
        self._users: dict[int, FakeUser] = {}
        self._injected: dict[str, deque[TelegramError]] = {}
        self._updates: list[Params] = []
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(4_000_000_000_000_000_001)
        self._charge_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._updates_signal = _Signal()
        self._poll_generation = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._handlers: dict[str, Handler] = self._build_handlers()
        # Global flood limit on new outgoing messages (off by default): see `limit_rate`.
        self.rate_limit: int | None = None
        self.rate_limit_retry_after = 1
        self.rate_limited = 0
        self._sent_times: deque[float] = deque()
        # Methods whose calls wait, recorded but without effect, until `release`: see `hold`.
        self._holds: dict[str, asyncio.Event] = {}
        self.held: list[Call] = []
        # Webhook delivery (see the module docstring).
        self.webhook: _Webhook | None = None
        self.deliveries: list[Delivery] = []
        self.webhook_routes: dict[str, list[str]] = {}
        self.webhook_retry_delay = 0.05
        self.webhook_retry_max = 1.0
        self.webhook_timeout = 30.0
        self.webhook_connections = 1  # deliveries in flight per target
        self._webhook_signal = _Signal()
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_posts: set[asyncio.Task[None]] = set()
        self._webhook_session: aiohttp.ClientSession | None = None
        self._in_flight: dict[int, str] = {}  # update_id -> target
        self._retry_at: dict[int, float] = {}
        self._attempts: dict[int, int] = {}
        self._next_target = 0
        self._last_error: tuple[int, str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving on 127.0.0.1 with an ephemeral port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._closing = False
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._webhook_session = aiohttp.ClientSession()
        self._webhook_task = asyncio.create_task(self._deliver_webhooks())

    async def stop(self) -> None:
        """Wake pending long polls (they answer ``[]``), stop webhook delivery and shut the
        server down."""
        self._closing = True
        self._updates_signal.fire()
        self._webhook_signal.fire()
        for method in list(self._holds):
            self.release(method)
        tasks = [*self._webhook_posts, *([self._webhook_task] if self._webhook_task else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._webhook_task = None
        if self._webhook_session is not None:
            await self._webhook_session.close()
            self._webhook_session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; valid after :meth:`start`."""
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return f"http://127.0.0.1:{self._port}"

    def make_session(self) -> AiohttpSession:
        """An aiogram session pointed at this fake: ``Bot(fake.token, session=...)``."""
        return AiohttpSession(api=TelegramAPIServer.from_base(self.base_url))

    # -- test-facing API ---------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of ``method`` (case-insensitive), in order."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def user(
        self,
        user_id: int,
        first_name: str = "Alice",
        username: str | None = None,
        language_code: str = "en",
    ) -> FakeUser:
        """Return the user with this id, creating it (and its private chat) on first use."""
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        created = FakeUser(self, user_id, first_name, username, language_code)
        self._users[user_id] = created
        return created

    @property
    def users(self) -> list[FakeUser]:
        """All users created so far."""
        return list(self._users.values())

    def block(self, user_id: int) -> None:
        """From now on any send/edit to this chat answers 403 'bot was blocked by the user'."""
        self.blocked_users.add(user_id)

    def unblock(self, user_id: int) -> None:
        """Undo :meth:`block`."""
        self.blocked_users.discard(user_id)

    def flood(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer 429 with ``retry_after``."""
        error = TelegramError(
            TOO_MANY_REQUESTS,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )
        self._inject(method, error, times)

    def limit_rate(self, per_second: int | None, retry_after: int = 1) -> None:
        """Answer 429 ``retry after N`` to a new outgoing message (send*, copyMessage,
        forwardMessage; edits do not count) once ``per_second`` were accepted in the last
        second, like Telegram's global limit. ``None`` turns it off; refusals are counted in
        :attr:`rate_limited`."""
        self.rate_limit = per_second
        self.rate_limit_retry_after = retry_after
        self.rate_limited = 0
        self._sent_times.clear()

    def hold(self, method: str) -> None:
        """Keep every later call of ``method`` waiting (recorded in :attr:`calls` and
        :attr:`held`, no effect yet) until :meth:`release`: a request the bot has sent whose
        answer it has not seen. Released calls then take effect, even if the bot is gone."""
        self._holds.setdefault(method.lower(), asyncio.Event())

    def release(self, method: str) -> None:
        """Let the held calls of ``method`` (and every later one) go through."""
        gate = self._holds.pop(method.lower(), None)
        if gate is not None:
            gate.set()

    def make_users(self, count: int, first_id: int, first_name: str = "User") -> list[FakeUser]:
        """Create ``count`` users with consecutive ids from ``first_id`` (cheap: no updates)."""
        return [
            self.user(user_id, first_name=f"{first_name} {user_id}")
            for user_id in range(first_id, first_id + count)
        ]

    def fail(self, method: str, error_code: int, description: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer this error (no effect)."""
        self._inject(method, TelegramError(error_code, description), times)

    def unanswered_callbacks(self) -> list[str]:
        """Ids of callback queries pushed but never answered."""
        return [qid for qid, (_, answered) in self.callbacks.items() if not answered]

    @property
    def pending_updates(self) -> int:
        """Updates pushed and not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    @staticmethod
    def scope_key(scope: Params | None = None, language_code: str = "") -> str:
        """The key of :attr:`commands` for a BotCommandScope dict and language code."""
        key = json.dumps(scope or {"type": "default"}, sort_keys=True)
        return f"{key}|{language_code}" if language_code else key

    def commands_for(self, scope: Params | None = None, language_code: str = "") -> list[Params]:
        """Commands set for this scope/language (``[]`` if none)."""
        return self.commands.get(self.scope_key(scope, language_code), [])

    def push_update(self, payload: Params) -> int:
        """Queue a raw update (``{"message": {...}}``...) for getUpdates; return its id."""
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **payload})
        self._updates_signal.fire()
        self._webhook_signal.fire()
        return update_id

    # -- webhook delivery --------------------------------------------------------------------

    def route_webhook(self, url: str, *targets: str) -> None:
        """Deliver what is meant for the webhook ``url`` to ``targets`` in turn (round-robin),
        as a reverse proxy in front of several bot instances would; no targets: to ``url``."""
        if targets:
            self.webhook_routes[url] = list(targets)
        else:
            self.webhook_routes.pop(url, None)
        self._webhook_signal.fire()

    def steer_webhook(self, url: str, target: str) -> None:
        """The next update for the webhook ``url`` goes to ``target`` (one of its routed
        targets, if free), as a proxy with sticky routing would send one request."""
        self._next_target = self.webhook_routes[url].index(target)

    def deliveries_of(self, update_id: int) -> list[Delivery]:
        """Every POST of this update so far (retries included), in order."""
        return [d for d in self.deliveries if d.update_id == update_id]

    async def wait_delivered(
        self,
        update_id: int,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the test-facing API
    ) -> Delivery:
        """Wait until a POST of ``update_id`` was answered 2xx; return that delivery."""
        return await _wait_until(
            self._webhook_signal,
            lambda: next((d for d in self.deliveries_of(update_id) if d.ok), None),
            timeout,
            lambda: (
                f"update {update_id} was not delivered within {timeout}s; "
                f"attempts: {self.deliveries_of(update_id)}"
            ),
        )

    async def wait_webhook_idle(
        self,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the test-facing API
    ) -> None:
        """Wait until every pending update has been delivered (answered 2xx)."""
        await _wait_until(
            self._webhook_signal,
            lambda: True if not self._updates and not self._in_flight else None,
            timeout,
            lambda: (
                f"{len(self._updates)} update(s) still pending after {timeout}s; "
                f"last attempts: {self.deliveries[-5:]}"
            ),
        )

    def delivering(self, update_id: int) -> str | None:
        """The target a POST of this update is in flight to now, or None."""
        return self._in_flight.get(update_id)

    def _webhook_targets(self, hook: _Webhook) -> list[str]:
        return self.webhook_routes.get(hook.url) or [hook.url]

    def _next_deliverable(self, hook: _Webhook) -> tuple[Params, str] | float | None:
        """The oldest update not in flight and a free target for it; or how long to wait for
        its backoff; or None when there is nothing to do (or no free target) now."""
        while True:
            waiting = (u for u in self._updates if u["update_id"] not in self._in_flight)
            update = next(waiting, None)
            if update is None:
                return None
            if _allowed(update, hook.allowed_updates):
                break
            self._updates.remove(update)  # Telegram does not keep what the bot did not ask for
        wait = self._retry_at.get(update["update_id"], 0.0) - time.monotonic()
        if wait > 0:
            return wait
        targets = self._webhook_targets(hook)
        busy = collections.Counter(self._in_flight.values())
        for step in range(len(targets)):
            target = targets[(self._next_target + step) % len(targets)]
            if busy[target] < self.webhook_connections:
                self._next_target = (self._next_target + step + 1) % len(targets)
                return update, target
        return None

    async def _deliver_webhooks(self) -> None:
        """The delivery loop: runs while the fake is started, idle while no webhook is set."""
        while not self._closing:
            hook = self.webhook
            found = self._next_deliverable(hook) if hook is not None else None
            if isinstance(found, tuple):
                update, target = found
                assert hook is not None
                self._in_flight[update["update_id"]] = target
                task = asyncio.create_task(self._post_update(hook, target, update))
                self._webhook_posts.add(task)
                task.add_done_callback(self._webhook_posts.discard)
                continue
            await self._webhook_signal.wait(found if isinstance(found, float) else 1.0)

    async def _post_update(self, hook: _Webhook, target: str, update: Params) -> None:
        update_id = int(update["update_id"])
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers[SECRET_HEADER] = hook.secret_token
        status: int | None = None
        error: str | None = None
        assert self._webhook_session is not None
        try:
            async with self._webhook_session.post(
                target,
                data=json.dumps(update),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._in_flight.pop(update_id, None)
        delivery = Delivery(update_id, target, status, error)
        self.deliveries.append(delivery)
        if delivery.ok:
            self._updates = [u for u in self._updates if u["update_id"] != update_id]
            self._attempts.pop(update_id, None)
            self._retry_at.pop(update_id, None)
        else:
            attempts = self._attempts[update_id] = self._attempts.get(update_id, 0) + 1
            backoff = min(self.webhook_retry_max, self.webhook_retry_delay * 2 ** (attempts - 1))
            self._retry_at[update_id] = time.monotonic() + backoff
            reason = f"Wrong response from the webhook: {status}" if status else str(error)
            self._last_error = (int(time.time()), reason)
        self._webhook_signal.fire()

    def bot_json(self) -> Params:
        """The bot's User object."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "NumBot Test",
            "username": self.bot_username,
        }

    def message_json(self, message: Message) -> Params:
        """The Bot API Message object for the current state of ``message``."""
        user = self._users[message.chat_id]
        data: Params = {
            "message_id": message.message_id,
            "from": self.bot_json() if message.from_bot else user.user_json(),
            "chat": user.chat_json(),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        data.update(message.media)
        if message.kind == "text":
            data["text"] = message.plain
            if message.entities:
                data["entities"] = message.entities
        elif message.plain:
            data["caption"] = message.plain
            if message.entities:
                data["caption_entities"] = message.entities
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            data["reply_markup"] = message.reply_markup
        return data

    def new_query_id(self) -> str:
        """A fresh callback/pre-checkout query id."""
        return str(next(self._query_ids))

    def refund_payment(self, charge_id: str) -> Message:
        """Telegram returns a payment's stars by itself (a dispute, support): the charge is
        refunded and the bot gets a ``refunded_payment`` message in the payer's chat."""
        charge = self.charges[charge_id]
        if charge.refunded:
            raise AssertionError(f"charge {charge_id} was refunded already")
        charge.refunded = True
        return self._users[charge.user_id]._refunded(charge)

    def new_charge(self, user_id: int, invoice: Params) -> Charge:
        """Record a successful payment of ``invoice`` by ``user_id``."""
        charge = Charge(
            charge_id=f"stxFAKE{next(self._charge_ids):08d}",
            user_id=user_id,
            currency=invoice["currency"],
            total_amount=invoice["total_amount"],
            invoice_payload=invoice["payload"],
        )
        self.charges[charge.charge_id] = charge
        return charge

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = Call(method=method, params={})
        self.calls.append(call)
        try:
            call.params, call.files = await _read_params(request)
            params, files = call.params, call.files
            if request.match_info["token"] != self.token:
                raise TelegramError(UNAUTHORIZED, "Unauthorized")
            gate = self._holds.get(method.lower())
            if gate is not None:
                self.held.append(call)
                await gate.wait()
            result = await self._dispatch(method, params, files)
            body: Params = {"ok": True, "result": result}
            status = 200
        except TelegramError as error:
            body, status = error.body(), error.error_code
        except Exception as error:  # a bug in the fake: surface it, don't hang the bot
            logger.exception("FakeTelegram failed on %s", method)
            self.server_errors.append(error)
            body = {"ok": False, "error_code": INTERNAL_ERROR, "description": f"Fake: {error!r}"}
            status = INTERNAL_ERROR
        call.response = body
        return web.json_response(body, status=status)

    async def _dispatch(self, method: str, params: Params, files: dict[str, UploadedFile]) -> Any:
        queue = self._injected.get(method.lower())
        if queue:
            raise queue.popleft()
        if self.rate_limit is not None and method.lower() in _RATE_LIMITED_METHODS:
            self._check_rate()
        handler = self._handlers.get(method.lower())
        if handler is None:
            return True
        return await handler(params, files)

    def _check_rate(self) -> None:
        assert self.rate_limit is not None
        now = time.monotonic()
        while self._sent_times and self._sent_times[0] <= now - 1.0:
            self._sent_times.popleft()
        if len(self._sent_times) >= self.rate_limit:
            self.rate_limited += 1
            retry_after = self.rate_limit_retry_after
            raise TelegramError(
                TOO_MANY_REQUESTS,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        self._sent_times.append(now)

    def _inject(self, method: str, error: TelegramError, times: int) -> None:
        queue = self._injected.setdefault(method.lower(), deque())
        queue.extend(error for _ in range(times))

    def _build_handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "copyMessage": self._copy_message,
            "sendInvoice": self._send_invoice,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
            "close": self._true,
            "logOut": self._true,
        }
        return {name.lower(): handler for name, handler in handlers.items()}

    # -- shared validation -------------------------------------------------------------------

    def _chat(self, params: Params, key: str = "chat_id") -> FakeUser:
        chat_id = params.get(key)
        if chat_id is None or chat_id == "":
            raise _bad_request(ERR_CHAT_ID_EMPTY)
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            found = next((u for u in self._users.values() if f"@{u.username}" == chat_id), None)
            if found is None:
                raise _bad_request(ERR_CHAT_NOT_FOUND)
            return found
        try:
            user = self._users.get(int(chat_id))
        except (TypeError, ValueError):
            user = None
        if user is None:
            raise _bad_request(ERR_CHAT_NOT_FOUND)
        return user

    def _check_blocked(self, user: FakeUser) -> None:
        if user.id in self.blocked_users:
            raise TelegramError(FORBIDDEN, ERR_BLOCKED)

    @staticmethod
    def _message_id(params: Params) -> int:
        value = params.get("message_id")
        if value is None or value == "":
            raise _bad_request(ERR_MESSAGE_ID_EMPTY)
        try:
            return int(value)
        except (TypeError, ValueError) as error:
            raise _bad_request("Bad Request: invalid message_id specified") from error

    @staticmethod
    def _parse_text(
        text: str, parse_mode: Any, entities: Any, *, caption: bool = False
    ) -> tuple[str, list[Params]]:
        mode = str(parse_mode or "").lower()
        if mode == "html":
            plain, parsed = parse_html(text)
        elif mode in ("", "markdown", "markdownv2"):
            plain, parsed = text, entities if isinstance(entities, list) else []
        else:
            raise _bad_request(ERR_UNSUPPORTED_PARSE_MODE)
        if caption:
            if utf16_len(plain) > MAX_CAPTION_LENGTH:
                raise _bad_request(ERR_CAPTION_TOO_LONG)
        elif not plain.strip():
            raise _bad_request(ERR_TEXT_EMPTY)
        elif utf16_len(plain) > MAX_TEXT_LENGTH:
            raise _bad_request(ERR_TEXT_TOO_LONG)
        return plain, parsed

    @staticmethod
    def _markup(params: Params, *, inline_only: bool = False) -> Params | None:
        markup = params.get("reply_markup")
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad_request(ERR_MARKUP_JSON)
        if "inline_keyboard" in markup:
            _validate_inline_keyboard(markup["inline_keyboard"])
        elif inline_only:
            raise _bad_request("Bad Request: inline keyboard expected")
        elif "keyboard" in markup and not isinstance(markup["keyboard"], list):
            raise _bad_request(ERR_MARKUP_JSON)
        return markup

    def _editable(self, params: Params) -> tuple[FakeUser, Message] | None:
        """Resolve the target of an edit*; None for inline messages."""
        if params.get("inline_message_id"):
            return None
        user = self._chat(params)
        message = user.get(self._message_id(params))
        if message is None:
            raise _bad_request(ERR_EDIT_NOT_FOUND)
        if not message.from_bot:
            raise _bad_request(ERR_CANT_EDIT)
        return user, message

    def _store_file(
        self, value: Any, files: dict[str, UploadedFile], kind: str
    ) -> tuple[str, UploadedFile | None]:
        if not value:
            raise _bad_request(f"Bad Request: there is no {kind} in the request")
        value = str(value)
        if value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad_request("Bad Request: wrong file identifier/HTTP URL specified")
            file_id = f"FAKE-{kind}-{next(self._file_ids)}"
            self.files[file_id] = upload
            return file_id, upload
        return value, self.files.get(value)

    # -- methods: bot & updates --------------------------------------------------------------

    async def _true(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        return True

    async def _get_me(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        return {
            **self.bot_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: Params, files: dict[str, UploadedFile]) -> list[Params]:
        if self.webhook is not None:
            raise TelegramError(CONFLICT, ERR_WEBHOOK_ACTIVE)
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_signal.fire()  # an older long poll must now answer 409
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if self.webhook is not None:
                raise TelegramError(CONFLICT, ERR_TERMINATED_BY_WEBHOOK)
            if generation != self._poll_generation:
                raise TelegramError(CONFLICT, ERR_CONFLICT)
            ready = self._updates[:limit]
            remaining = deadline - loop.time()
            if ready or remaining <= 0:
                return list(ready)
            await self._updates_signal.wait(remaining)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    async def _set_webhook(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        url = params.get("url")
        if url is None or url == "":
            return await self._delete_webhook(params, files)
        url = str(url)
        if not re.match(r"https?://[^/?#\s]+", url):
            raise _bad_request(ERR_BAD_WEBHOOK_URL)
        secret = params.get("secret_token")
        if secret is not None and secret != "":
            if not isinstance(secret, str) or not _SECRET_TOKEN_RE.fullmatch(secret):
                raise _bad_request(ERR_SECRET_TOKEN)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _bad_request("Bad Request: can't parse allowed updates JSON object")
        else:
            allowed = self.webhook.allowed_updates if self.webhook is not None else None
        try:
            max_connections = int(params.get("max_connections") or 40)
        except (TypeError, ValueError) as error:
            raise _bad_request("Bad Request: invalid max_connections") from error
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self.webhook = _Webhook(url, secret or None, allowed, max_connections)
        self._updates_signal.fire()  # a long poll running now ends with 409
        self._webhook_signal.fire()
        return True

    async def _delete_webhook(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self.webhook = None
        self._webhook_signal.fire()
        return True

    async def _get_webhook_info(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        hook = self.webhook
        info: Params = {
            "url": hook.url if hook is not None else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates is not None:
                info["allowed_updates"] = hook.allowed_updates
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        return info

    async def _set_my_commands(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(str(command.get("command"))):
                raise _bad_request(ERR_COMMAND_INVALID)
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise _bad_request(ERR_COMMAND_DESCRIPTION_INVALID)
        key = self.scope_key(params.get("scope"), params.get("language_code") or "")
        self.commands[key] = commands
        return True

    async def _get_my_commands(self, params: Params, files: dict[str, UploadedFile]) -> list[Any]:
        return self.commands_for(params.get("scope"), params.get("language_code") or "")

    async def _delete_my_commands(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        key = self.scope_key(params.get("scope"), params.get("language_code") or "")
        self.commands.pop(key, None)
        return True

    # -- methods: messages -------------------------------------------------------------------

    async def _send_message(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        user = self._chat(params)
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        plain, entities = self._parse_text(text, parse_mode, params.get("entities"))
        markup = self._markup(params)
        self._check_blocked(user)
        message = user._new_message(
            text=text, parse_mode=parse_mode, plain=plain, entities=entities, reply_markup=markup
        )
        return self.message_json(message)

    async def _edit_message_text(self, params: Params, files: dict[str, UploadedFile]) -> Any:
        target = self._editable(params)
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        plain, entities = self._parse_text(text, parse_mode, params.get("entities"))
        markup = self._markup(params, inline_only=True)
        if target is None:
            return True
        user, message = target
        if message.kind != "text":
            raise _bad_request(ERR_NO_TEXT_TO_EDIT)
        if (plain, entities, markup) == (message.plain, message.entities, message.reply_markup):
            raise _bad_request(ERR_NOT_MODIFIED)
        self._check_blocked(user)
        message.text, message.parse_mode, message.plain = text, parse_mode, plain
        message.entities, message.reply_markup = entities, markup
        return self._edited(user, message)

    async def _edit_message_caption(self, params: Params, files: dict[str, UploadedFile]) -> Any:
        target = self._editable(params)
        caption = str(params.get("caption") or "")
        parse_mode = params.get("parse_mode") or None
        plain, entities = self._parse_text(
            caption, parse_mode, params.get("caption_entities"), caption=True
        )
        markup = self._markup(params, inline_only=True)
        if target is None:
            return True
        user, message = target
        if message.kind not in ("photo", "document"):
            raise _bad_request(ERR_NO_CAPTION_TO_EDIT)
        if (plain, entities, markup) == (message.plain, message.entities, message.reply_markup):
            raise _bad_request(ERR_NOT_MODIFIED)
        self._check_blocked(user)
        message.text, message.parse_mode, message.plain = caption, parse_mode, plain
        message.entities, message.reply_markup = entities, markup
        return self._edited(user, message)

    async def _edit_message_reply_markup(
        self, params: Params, files: dict[str, UploadedFile]
    ) -> Any:
        target = self._editable(params)
        markup = self._markup(params, inline_only=True)
        if target is None:
            return True
        user, message = target
        if markup == message.reply_markup:
            raise _bad_request(ERR_NOT_MODIFIED)
        self._check_blocked(user)
        message.reply_markup = markup
        return self._edited(user, message)

    def _edited(self, user: FakeUser, message: Message) -> Params:
        message.edits += 1
        message.edit_date = int(time.time())
        user._record(message)
        return self.message_json(message)

    async def _delete_message(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        user = self._chat(params)
        if not user._delete(self._message_id(params)):
            raise _bad_request(ERR_DELETE_NOT_FOUND)
        return True

    async def _answer_callback_query(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        state = self.callbacks.get(query_id)
        if state is None or state[1]:
            raise _bad_request(ERR_QUERY_INVALID)
        user_id, _ = state
        self.callbacks[query_id] = (user_id, True)
        text = params.get("text")
        answer = CallbackAnswer(
            callback_query_id=query_id,
            text=None if text is None else str(text),
            show_alert=params.get("show_alert") is True,
            url=params.get("url"),
            cache_time=int(params.get("cache_time") or 0),
        )
        self._users[user_id]._add_answer(answer)
        return True

    async def _send_chat_action(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        user = self._chat(params)
        action = str(params.get("action") or "")
        if action not in _CHAT_ACTIONS:
            raise _bad_request(ERR_WRONG_ACTION)
        self._check_blocked(user)
        user.actions.append(action)
        return True

    async def _send_photo(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        return await self._send_media(params, files, "photo")

    async def _send_document(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        return await self._send_media(params, files, "document")

    async def _send_media(
        self, params: Params, files: dict[str, UploadedFile], kind: str
    ) -> Params:
        user = self._chat(params)
        file_id, upload = self._store_file(params.get(kind), files, kind)
        caption = str(params.get("caption") or "")
        parse_mode = params.get("parse_mode") or None
        plain, entities = self._parse_text(
            caption, parse_mode, params.get("caption_entities"), caption=True
        )
        markup = self._markup(params)
        self._check_blocked(user)
        message = user._new_message(
            text=caption,
            parse_mode=parse_mode,
            plain=plain,
            entities=entities,
            reply_markup=markup,
            kind=kind,
            media={kind: _media_json(kind, file_id, upload)},
            file=upload,
        )
        return self.message_json(message)

    async def _copy_message(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        source_chat = self._chat(params, "from_chat_id")
        user = self._chat(params)
        source = source_chat.get(self._message_id(params))
        if source is None or source.kind not in ("text", "photo", "document"):
            raise _bad_request(ERR_COPY_NOT_FOUND)
        text, parse_mode, plain, entities = (
            source.text,
            source.parse_mode,
            source.plain,
            source.entities,
        )
        if "caption" in params and source.kind != "text":
            text = str(params.get("caption") or "")
            parse_mode = params.get("parse_mode") or None
            plain, entities = self._parse_text(
                text, parse_mode, params.get("caption_entities"), caption=True
            )
        markup = self._markup(params)
        self._check_blocked(user)
        copied = user._new_message(
            text=text,
            parse_mode=parse_mode,
            plain=plain,
            entities=list(entities),
            reply_markup=markup,
            kind=source.kind,
            media=copy.deepcopy(source.media),
            file=source.file,
        )
        return {"message_id": copied.message_id}

    # -- methods: payments -------------------------------------------------------------------

    async def _send_invoice(self, params: Params, files: dict[str, UploadedFile]) -> Params:
        user = self._chat(params)
        prices = params.get("prices")
        if not isinstance(prices, list) or not prices:
            raise _bad_request("Bad Request: can't parse prices JSON object")
        for name in ("title", "description", "payload", "currency"):
            if not params.get(name):
                raise _bad_request(f'Bad Request: parameter "{name}" is required')
        markup = self._markup(params)
        self._check_blocked(user)
        invoice: Params = {
            "title": str(params["title"]),
            "description": str(params["description"]),
            "payload": str(params["payload"]),
            "currency": str(params["currency"]),
            "prices": prices,
            "total_amount": sum(int(p.get("amount", 0)) for p in prices),
            "start_parameter": str(params.get("start_parameter") or ""),
        }
        plain = f"{invoice['title']}\n{invoice['description']}"
        message = user._new_message(
            text=plain,
            plain=plain,
            reply_markup=markup,
            kind="invoice",
            invoice=invoice,
            media={
                "invoice": {
                    k: invoice[k]
                    for k in (
                        "title",
                        "description",
                        "start_parameter",
                        "currency",
                        "total_amount",
                    )
                }
            },
        )
        return self.message_json(message)

    async def _answer_pre_checkout_query(
        self, params: Params, files: dict[str, UploadedFile]
    ) -> bool:
        query_id = str(params.get("pre_checkout_query_id") or "")
        if query_id not in self.pre_checkouts or self.pre_checkouts[query_id] is not None:
            raise _bad_request(ERR_QUERY_INVALID)
        ok = params.get("ok") is True
        error_message = params.get("error_message")
        if not ok and not error_message:
            raise _bad_request("Bad Request: ERROR_MESSAGE_EMPTY")
        self.pre_checkouts[query_id] = (ok, None if ok else str(error_message))
        for user in self._users.values():
            user._signal.fire()
        return True

    async def _refund_star_payment(self, params: Params, files: dict[str, UploadedFile]) -> bool:
        try:
            user_id = int(params.get("user_id") or 0)
        except (TypeError, ValueError):
            user_id = 0
        if user_id not in self._users:
            raise _bad_request(ERR_USER_NOT_FOUND)
        charge = self.charges.get(str(params.get("telegram_payment_charge_id") or ""))
        if charge is None or charge.user_id != user_id:
            raise _bad_request(ERR_CHARGE_NOT_FOUND)
        if charge.refunded:
            raise _bad_request(ERR_CHARGE_REFUNDED)
        charge.refunded = True
        if self.announce_refunds:
            self._users[user_id]._refunded(charge)
        return True


# --------------------------------------------------------------------------------------------
# Request decoding and keyboard validation
# --------------------------------------------------------------------------------------------


def _decode_param(name: str, value: Any) -> Any:
    """JSON-decode a form value unless the Bot API declares the parameter a String."""
    if not isinstance(value, str) or name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(request: web.Request) -> tuple[Params, dict[str, UploadedFile]]:
    params: Params = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as error:
                raise _bad_request("Bad Request: can't parse JSON request body") from error
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = UploadedFile(
                        filename=value.filename,
                        content=value.file.read(),
                        content_type=value.content_type,
                    )
                else:
                    params[name] = value
    return {name: _decode_param(name, value) for name, value in params.items()}, files


def _validate_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request(ERR_MARKUP_JSON)
    for row in rows:
        for button in row:
            _validate_inline_button(button)


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad_request(ERR_MARKUP_JSON)
    actions = set(button) - {"text", "icon_custom_emoji_id", "style"}
    if not actions:
        raise _bad_request(ERR_TEXT_BUTTON)
    if "callback_data" in button:
        data = button["callback_data"]
        size = len(data.encode("utf-8")) if isinstance(data, str) else 0
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise _bad_request(ERR_BUTTON_DATA)
    if "url" in button and not str(button["url"]).strip():
        raise _bad_request("Bad Request: BUTTON_URL_INVALID")


def _media_json(kind: str, file_id: str, upload: UploadedFile | None) -> Any:
    unique_id = f"U{zlib.crc32(file_id.encode()):010d}"
    size = len(upload.content) if upload else 0
    if kind == "photo":
        return [
            {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "width": 320,
                "height": 320,
                "file_size": size,
            }
        ]
    document: Params = {"file_id": file_id, "file_unique_id": unique_id, "file_size": size}
    if upload is not None:
        document["file_name"] = upload.filename
        document["mime_type"] = upload.content_type
    return document
