#!/usr/bin/env python3
"""A fake Telegram Bot API server for tests, on one loopback port.

Standard library only. Tests start it, wait for `READY <port>` on stdout, point the bot at
http://127.0.0.1:<port> (TELEGRAM_API_URL; method URLs are <base>/bot<token>/<method>),
inject user messages through /_control, script failures, and read back what the bot sent.
See README.md next to this file for the whole API.

Usage: fake_telegram.py --port P [--host 127.0.0.1] [--token T] [--verbose] [--exit-on-stdin-eof]
  --port 0 picks a free port; the line `READY <port>` names the one actually bound.
  SIGTERM or SIGINT: stop listening and exit 0 (in-flight requests and waiting polls are abandoned).

Bot API methods (GET query, POST JSON, POST form-urlencoded or POST multipart/form-data):
  getMe, getUpdates, sendMessage, editMessageText, editMessageReplyMarkup, sendPhoto,
  sendMediaGroup, answerCallbackQuery, deleteMessage, sendChatAction, setMyCommands,
  getMyCommands, deleteWebhook
Control:
  POST /_control/updates   {"updates": [{"text", "user_id", "chat_id", ...} | {"update": {...}}, ...]}
  POST /_control/callback_query  {"message_id", "data", "user_id", "username", "first_name"}
  POST /_control/script    {"method", "responses": [RESPONSE, ...]}  (appends)
  POST /_control/limits    {"edit_min_interval_ms": N}
  POST /_control/reset     [{"first_update_id": N}]
  GET  /_control/calls[?method=M]   GET /_control/messages[?chat_id=C]
  GET  /_control/state     GET /_control/scripts     GET /_control/health
"""

import hashlib
import json
import re
import select
import socket
import sys
import threading
import time
from urllib.parse import parse_qsl, unquote

from fakeserver import (BadRequest, ClientGone, FakeHandler, check_fields, json_object, now_ms, parse_arguments,
                        script_responses, serve)

DEFAULT_TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
BOT_FIRST_NAME = "ImageQueue Test"
BOT_USERNAME = "iq_test_bot"
FIRST_MESSAGE_ID = 1000
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
MAX_CALLBACK_DATA = 64
MAX_BODY = 60 * 1024 * 1024
PHOTO_SIDE = 512
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")
CONFLICT = ("Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
            "running")

METHODS = ("getMe", "getUpdates", "sendMessage", "editMessageText", "editMessageReplyMarkup", "sendPhoto",
           "sendMediaGroup", "answerCallbackQuery", "deleteMessage", "sendChatAction", "setMyCommands",
           "getMyCommands", "deleteWebhook")
METHOD_BY_LOWER = {name.lower(): name for name in METHODS}  # Bot API method names ignore case

# Parameters Telegram types as JSON: in query, form and multipart bodies they arrive as JSON text.
JSON_PARAMS = {"reply_parameters", "allowed_updates", "reply_markup", "entities", "caption_entities",
               "commands", "scope", "link_preview_options", "media"}
INT_PARAMS = {"chat_id", "message_id", "reply_to_message_id", "offset", "limit", "message_thread_id",
              "user_id", "from_chat_id", "cache_time"}
BOOL_PARAMS = {"disable_notification", "protect_content", "drop_pending_updates", "has_spoiler",
               "disable_web_page_preview", "show_caption_above_media", "allow_sending_without_reply",
               "show_alert"}
CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                "upload_document", "choose_sticker", "find_location", "record_video_note",
                "upload_video_note"}

SCRIPT_FIELDS = {"status": int, "retry_after": int, "description": str, "delay_ms": (int, float),
                 "drop": bool}
CALLBACK_FIELDS = {"message_id": int, "data": str, "user_id": int, "username": (str, type(None)), "first_name": str}
UPDATE_FIELDS = {"text": str, "user_id": int, "chat_id": int, "username": (str, type(None)),
                 "first_name": str, "last_name": str, "chat_type": str, "title": str}
CHAT_TYPES = ("private", "group", "supergroup")
DEFAULT_DESCRIPTIONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                        409: "Conflict", 413: "Request Entity Too Large", 429: "Too Many Requests",
                        500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                        504: "Gateway Timeout"}
INTEGER = re.compile(r"-?[0-9]+")


def integer(value):
    """An int from an int or a string of digits; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def image_kind(data):
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return "other"


def utf16_length(text):
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    """A Bot API failure: answered {"ok":false,"error_code":status,"description":...}."""

    def __init__(self, status, description=None, retry_after=None):
        super().__init__(description)
        self.status = status
        if description is None:
            description = DEFAULT_DESCRIPTIONS.get(status, "Error")
            if status == 429 and retry_after is not None:
                description = f"Too Many Requests: retry after {retry_after}"
        self.description = description
        self.retry_after = retry_after


class Dropped(Exception):
    """A scripted drop: the connection was closed without an answer."""


# --- Shared state -----------------------------------------------------------------------------

class State:
    """Everything the fake remembers; every access under one lock, `changed` its condition."""

    def __init__(self, token):
        self.token = token
        self.bot = {"id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": BOT_FIRST_NAME,
                    "username": BOT_USERNAME}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.epoch = 0  # bumped by reset: waiting polls answer []
        self.poll_ticket = 0  # the newest getUpdates; an older waiting one answers 409
        self.polling = 0  # getUpdates requests waiting right now (kept across resets)
        with self.lock:
            self.clear(1)

    def clear(self, first_update_id):
        """Forget everything (the caller holds the lock, or nobody else runs yet)."""
        self.updates = []  # stored, unconfirmed updates in update_id order
        self.confirmed_below = 0
        self.next_update_id = first_update_id
        self.next_message_id = FIRST_MESSAGE_ID
        self.messages = {}  # bot-sent: message_id -> record, in sending order
        self.user_messages = {}  # injected: message_id -> message object
        self.deleted_user_messages = set()
        self.chats = {}  # chat id -> chat object, from injected updates
        self.calls = []
        self.call_seq = 0
        self.scripts = {}
        self.edit_min_interval_ms = 0
        self.flood_refusals = 0
        self.allowed_updates = None
        self.commands = []
        self.files = {}  # file_id -> photo info, for re-sending by file_id
        self.callbacks = {}  # callback query id -> {"answered": bool, ...}, from injected button presses
        self.next_media_group = 1
        self.epoch += 1
        self.changed.notify_all()

    def reset(self, first_update_id):
        with self.lock:
            self.clear(first_update_id)

    # -- calls log --

    def record_call(self, entry):
        with self.lock:
            self.call_seq += 1
            entry["seq"] = self.call_seq
            self.calls.append(entry)

    def finish_call(self, entry, **fields):
        with self.lock:
            entry.update(fields)

    def calls_of(self, method=None):
        with self.lock:
            return [json.loads(json.dumps(entry)) for entry in self.calls
                    if method is None or entry["method"] == method]

    # -- scripts and limits --

    def add_scripts(self, method, responses):
        with self.lock:
            queue = self.scripts.setdefault(method, [])
            queue.extend(responses)
            return len(queue)

    def next_script(self, method):
        with self.lock:
            queue = self.scripts.get(method)
            return queue.pop(0) if queue else None

    def pending_scripts(self):
        with self.lock:
            return {name: len(self.scripts.get(name, [])) for name in METHODS}

    def set_limits(self, edit_min_interval_ms):
        with self.lock:
            self.edit_min_interval_ms = edit_min_interval_ms

    def summary(self):
        with self.lock:
            return {"pending_updates": len(self.updates), "confirmed_below": self.confirmed_below,
                    "polling": self.polling, "flood_refusals": self.flood_refusals,
                    "next_update_id": self.next_update_id, "next_message_id": self.next_message_id,
                    "edit_min_interval_ms": self.edit_min_interval_ms,
                    "callback_queries": len(self.callbacks),
                    "unanswered_callback_queries": sum(1 for query in self.callbacks.values() if not query["answered"]),
                    "allowed_updates": sorted(self.allowed_updates) if self.allowed_updates else None}

    # -- chats and messages --

    def chat_object(self, chat_id):
        known = self.chats.get(chat_id)
        if known is not None:
            return dict(known)
        if chat_id > 0:
            return {"id": chat_id, "type": "private"}
        return {"id": chat_id, "type": "supergroup" if str(chat_id).startswith("-100") else "group",
                "title": "Test group"}

    def message_object(self, record, with_reply=True):
        message = {"message_id": record["message_id"], "from": dict(self.bot),
                   "chat": self.chat_object(record["chat_id"]), "date": record["date"]}
        if record["edit_date"] is not None:
            message["edit_date"] = record["edit_date"]
        if record["kind"] == "text":
            message["text"] = record["text"]
        else:
            info = record["photo"]
            message["photo"] = [{"file_id": info["file_id"], "file_unique_id": info["file_unique_id"],
                                 "width": PHOTO_SIDE, "height": PHOTO_SIDE, "file_size": info["bytes"]}]
            if record["caption"] is not None:
                message["caption"] = record["caption"]
            if record.get("media_group_id") is not None:
                message["media_group_id"] = record["media_group_id"]
        markup = record["reply_markup"]
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        if with_reply and record["reply_to"] is not None:
            message["reply_to_message"] = self.replied_object(record["reply_to"], record["chat_id"])
        return message

    def replied_object(self, message_id, chat_id):
        user = self.user_messages.get(message_id)
        if user is not None:
            return {key: value for key, value in user.items() if key != "reply_to_message"}
        bot = self.messages.get(message_id)
        if bot is not None:
            return self.message_object(bot, with_reply=False)
        return {"message_id": message_id, "chat": self.chat_object(chat_id), "date": int(time.time())}

    def new_message_id(self):
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def store_bot_message(self, chat_id, kind, text=None, caption=None, photo=None, reply_to=None,
                          params=None, media_group_id=None, reply_markup=None):
        message_id = self.new_message_id()
        sent = now_ms()
        record = {"message_id": message_id, "chat_id": chat_id, "kind": kind, "text": text,
                  "caption": caption, "photo": photo, "reply_to": reply_to, "edits": 0,
                  "history": [text] if kind == "text" else [], "deleted": False,
                  "date": sent // 1000, "edit_date": None, "sent_ms": sent, "edited_ms": None,
                  "last_change_ms": sent, "parse_mode": (params or {}).get("parse_mode"),
                  "reply_markup": reply_markup if reply_markup is not None else (params or {}).get("reply_markup"),
                  "media_group_id": media_group_id}
        self.messages[message_id] = record
        return record

    def messages_of(self, chat_id=None):
        with self.lock:
            listed = []
            for record in self.messages.values():
                if chat_id is not None and record["chat_id"] != chat_id:
                    continue
                photo = None
                if record["photo"] is not None:
                    photo = {key: record["photo"][key]
                             for key in ("bytes", "sha256", "kind", "content_type", "filename", "file_id")}
                listed.append({"message_id": record["message_id"], "chat_id": record["chat_id"],
                               "kind": record["kind"], "text": record["text"], "caption": record["caption"],
                               "photo": photo, "reply_to": record["reply_to"], "edits": record["edits"],
                               "history": list(record["history"]), "deleted": record["deleted"],
                               "sent_ms": record["sent_ms"], "edited_ms": record["edited_ms"],
                               "parse_mode": record["parse_mode"], "reply_markup": record["reply_markup"],
                               "media_group_id": record["media_group_id"]})
            return listed

    # -- injected updates --

    def inject(self, items):
        """Stores updates built from control items; returns (update_ids, message_ids)."""
        update_ids, message_ids = [], []
        with self.lock:
            for item in items:
                if "update" in item:
                    update = item["update"]
                    if not isinstance(update.get("update_id"), int) or isinstance(update.get("update_id"), bool):
                        update["update_id"] = self.next_update_id
                    self.next_update_id = max(self.next_update_id, update["update_id"] + 1)
                    message = next((value for key, value in update.items() if key != "update_id"), None)
                    message_id = None
                    if isinstance(message, dict) and integer(message.get("message_id")) is not None:
                        message_id = integer(message["message_id"])
                        self.next_message_id = max(self.next_message_id, message_id + 1)
                        self.user_messages[message_id] = message
                else:
                    update, message_id = self.message_update(item)
                self.updates.append(update)
                update_ids.append(update["update_id"])
                message_ids.append(message_id)
            self.updates.sort(key=lambda update: update["update_id"])
            self.changed.notify_all()
        return update_ids, message_ids

    def inject_callback(self, item):
        """Stores a callback_query update: `user_id` pressed a button under the bot's message
        `message_id`, sending `data`. Returns (update_id, callback query id)."""
        with self.lock:
            record = self.messages.get(item["message_id"])
            if record is None or record["deleted"]:
                raise BadRequest(f"message_id {item['message_id']} is not a message the bot sent")
            user_id = item.get("user_id", 42)
            username = item.get("username", "alice")
            first_name = item.get("first_name") or ((username or "alice")[:1].upper() + (username or "alice")[1:])
            sender = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
            if username:
                sender["username"] = username
            query_id = f"{user_id}{len(self.callbacks) + 1:06d}"
            self.callbacks[query_id] = {"answered": False, "user_id": user_id, "data": item["data"],
                                        "message_id": record["message_id"], "time_ms": now_ms()}
            update = {"update_id": self.next_update_id,
                      "callback_query": {"id": query_id, "from": sender, "message": self.message_object(record),
                                         "chat_instance": f"-{abs(record['chat_id'])}77", "data": item["data"]}}
            self.next_update_id += 1
            self.updates.append(update)
            self.changed.notify_all()
            return update["update_id"], query_id

    def message_update(self, item):
        user_id = item.get("user_id", 42)
        chat_id = item.get("chat_id", user_id)
        chat_type = item.get("chat_type", "private")
        username = item.get("username", "alice")
        first_name = item.get("first_name") or ((username or "alice")[:1].upper() + (username or "alice")[1:])
        sender = {"id": user_id, "is_bot": False, "first_name": first_name}
        if item.get("last_name"):
            sender["last_name"] = item["last_name"]
        if username:
            sender["username"] = username
        sender["language_code"] = "en"
        if chat_type == "private":
            chat = {"id": chat_id, "type": "private", "first_name": first_name}
            if item.get("last_name"):
                chat["last_name"] = item["last_name"]
            if username:
                chat["username"] = username
        else:
            chat = {"id": chat_id, "type": chat_type, "title": item.get("title", "Test group")}
        self.chats[chat_id] = chat
        message_id = self.new_message_id()
        message = {"message_id": message_id, "from": sender, "chat": dict(chat), "date": int(time.time()),
                   "text": item["text"]}
        command = item["text"].split(maxsplit=1)[0] if item["text"].startswith("/") else ""
        if len(command) > 1:
            message["entities"] = [{"offset": 0, "length": utf16_length(command), "type": "bot_command"}]
        self.user_messages[message_id] = message
        update = {"update_id": self.next_update_id, "message": message}
        self.next_update_id += 1
        return update, message_id

    # -- getUpdates --

    def confirm(self, offset):
        """Forgets every update below offset; a negative offset keeps only the last -offset."""
        if offset is None or offset == 0:
            return
        if offset < 0:
            keep = self.updates[offset:] if -offset < len(self.updates) else self.updates
            self.confirmed_below = max(self.confirmed_below,
                                       keep[0]["update_id"] if keep else self.next_update_id)
        else:
            self.confirmed_below = max(self.confirmed_below, offset)
        self.updates = [update for update in self.updates if update["update_id"] >= self.confirmed_below]

    def deliverable(self, limit):
        if self.allowed_updates:
            def wanted(update):
                kinds = [key for key in update if key != "update_id"]
                return not kinds or kinds[0] in self.allowed_updates
            self.updates = [update for update in self.updates if wanted(update)]
        return [json.loads(json.dumps(update)) for update in self.updates[:limit]]

    def get_updates(self, offset, limit, timeout, allowed, client_gone):
        with self.changed:
            self.poll_ticket += 1
            ticket, epoch = self.poll_ticket, self.epoch
            self.changed.notify_all()  # an older waiting poll sees the newer ticket: 409
            if isinstance(allowed, list):
                self.allowed_updates = {kind for kind in allowed if isinstance(kind, str)} or None
            self.confirm(offset)
            deadline = time.monotonic() + timeout
            waiting = False
            try:
                while True:
                    if self.epoch != epoch:
                        return []
                    if self.poll_ticket != ticket:
                        raise ApiError(409, CONFLICT)
                    ready = self.deliverable(limit)
                    remaining = deadline - time.monotonic()
                    if ready or remaining <= 0:
                        return ready
                    if not waiting:
                        waiting = True
                        self.polling += 1
                    self.changed.wait(min(remaining, 0.1))
                    if client_gone():
                        raise ClientGone()
            finally:
                if waiting:
                    self.polling -= 1


STATE = None  # set in main


# --- Bot API methods (each runs with the parsed params and files; raise ApiError to fail) ------

def chat_id_of(params):
    raw = params.get("chat_id")
    if raw is None or raw == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    chat_id = integer(raw)
    if chat_id is None or chat_id == 0:
        raise ApiError(400, "Bad Request: chat not found")
    return chat_id


def message_id_of(params):
    message_id = integer(params.get("message_id"))
    if message_id is None or message_id <= 0:
        raise ApiError(400, "Bad Request: message identifier is not specified")
    return message_id


def reply_target(params):
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and integer(reply.get("message_id")) is not None:
        return integer(reply["message_id"])
    return integer(params.get("reply_to_message_id"))


def check_text(text):
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(text) > MAX_TEXT:
        raise ApiError(400, "Bad Request: message is too long")


def get_me(params, files, handler):
    return dict(STATE.bot)


def get_updates(params, files, handler):
    offset = integer(params.get("offset"))
    limit = integer(params.get("limit"))
    limit = 100 if limit is None or limit <= 0 else min(limit, 100)
    timeout = params.get("timeout", 0)
    try:
        timeout = max(0.0, float(timeout)) if not isinstance(timeout, bool) else 0.0
    except (TypeError, ValueError):
        timeout = 0.0
    return STATE.get_updates(offset, limit, timeout, params.get("allowed_updates"), handler.client_gone)


def send_message(params, files, handler):
    chat_id = chat_id_of(params)
    check_text(params.get("text"))
    with STATE.lock:
        record = STATE.store_bot_message(chat_id, "text", text=params["text"], reply_to=reply_target(params),
                                         params=params)
        return STATE.message_object(record)


def edit_message_text(params, files, handler):
    if params.get("inline_message_id") not in (None, ""):
        raise ApiError(400, "Bad Request: message to edit not found")
    chat_id = chat_id_of(params)
    message_id = message_id_of(params)
    text = params.get("text")
    check_text(text)
    with STATE.lock:
        record = STATE.messages.get(message_id)
        if record is None or record["chat_id"] != chat_id or record["deleted"]:
            raise ApiError(400, "Bad Request: message to edit not found")
        if record["kind"] != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        markup = params.get("reply_markup")
        if text == record["text"] and markup == record["reply_markup"]:
            raise ApiError(400, NOT_MODIFIED)
        now = now_ms()
        interval = STATE.edit_min_interval_ms
        if interval > 0 and now - record["last_change_ms"] < interval:
            STATE.flood_refusals += 1
            raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        record.update(text=text, reply_markup=markup, edits=record["edits"] + 1, edited_ms=now,
                      edit_date=now // 1000, last_change_ms=now)
        record["history"].append(text)
        return STATE.message_object(record)


def send_photo(params, files, handler):
    chat_id = chat_id_of(params)
    photo = files.get("photo")
    reused = None
    given = params.get("photo")
    if photo is None and isinstance(given, str) and given:
        if given.startswith("attach://"):
            photo = files.get(given[len("attach://"):])
        else:
            with STATE.lock:
                reused = STATE.files.get(given)
            if reused is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
    if reused is None and (photo is None or not photo["data"]):
        raise ApiError(400, "Bad Request: there is no photo in the request")
    caption = params.get("caption")
    if not isinstance(caption, str) or caption == "":
        caption = None
    if caption is not None and len(caption) > MAX_CAPTION:
        raise ApiError(400, "Bad Request: message caption is too long")
    if reused is None:
        info = photo_info(photo)
        if info["kind"] == "other":
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
    else:
        info = dict(reused)
    with STATE.lock:
        record = STATE.store_bot_message(chat_id, "photo", caption=caption, photo=info,
                                         reply_to=reply_target(params), params=params)
        info["file_id"] = info.get("file_id") or f"AgACAgFAKE{record['message_id']}{info['sha256'][:20]}"
        info["file_unique_id"] = info.get("file_unique_id") or f"AQAD{info['sha256'][:12]}"
        STATE.files[info["file_id"]] = dict(info)
        return STATE.message_object(record)


def send_media_group(params, files, handler):
    chat_id = chat_id_of(params)
    media = params.get("media")
    if not isinstance(media, list) or not 2 <= len(media) <= 10:
        raise ApiError(400, "Bad Request: wrong number of media (an album has 2 to 10)")
    infos, captions = [], []
    for item in media:
        if not isinstance(item, dict) or item.get("type") != "photo":
            raise ApiError(400, "Bad Request: unsupported media type (the fake knows photo)")
        given = item.get("media")
        photo = None
        if isinstance(given, str) and given.startswith("attach://"):
            photo = files.get(given[len("attach://"):])
        if photo is None or not photo["data"]:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        info = photo_info(photo)
        if info["kind"] == "other":
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = item.get("caption")
        if not isinstance(caption, str) or caption == "":
            caption = None
        if caption is not None and len(caption) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        infos.append(info)
        captions.append(caption)
    with STATE.lock:
        group = f"{13000000 + STATE.next_media_group}"
        STATE.next_media_group += 1
        answers = []
        for info, caption in zip(infos, captions):
            # An album carries no keyboard: a reply_markup given is ignored, as on the real server.
            record = STATE.store_bot_message(chat_id, "photo", caption=caption, photo=info,
                                             reply_to=reply_target(params), params={}, media_group_id=group)
            info["file_id"] = f"AgACAgFAKE{record['message_id']}{info['sha256'][:20]}"
            info["file_unique_id"] = f"AQAD{info['sha256'][:12]}"
            STATE.files[info["file_id"]] = dict(info)
            answers.append(STATE.message_object(record))
        return answers


def answer_callback_query(params, files, handler):
    query_id = params.get("callback_query_id")
    text = params.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_CALLBACK_ANSWER):
        raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
    with STATE.lock:
        query = STATE.callbacks.get(query_id) if isinstance(query_id, str) else None
        if query is None or query["answered"]:
            raise ApiError(400, QUERY_TOO_OLD)
        query.update(answered=True, text=text, show_alert=params.get("show_alert") is True, answered_ms=now_ms())
    return True


def edit_message_reply_markup(params, files, handler):
    if params.get("inline_message_id") not in (None, ""):
        raise ApiError(400, "Bad Request: message to edit not found")
    chat_id = chat_id_of(params)
    message_id = message_id_of(params)
    markup = params.get("reply_markup")
    with STATE.lock:
        record = STATE.messages.get(message_id)
        if record is None or record["chat_id"] != chat_id or record["deleted"]:
            raise ApiError(400, "Bad Request: message to edit not found")
        if markup == record["reply_markup"]:
            raise ApiError(400, NOT_MODIFIED)
        now = now_ms()
        record.update(reply_markup=markup, edits=record["edits"] + 1, edited_ms=now, edit_date=now // 1000,
                      last_change_ms=now)
        return STATE.message_object(record)


def photo_info(part):
    data = part["data"]
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content_type": part["content_type"],
            "filename": part["filename"], "kind": image_kind(data)}


def delete_message(params, files, handler):
    chat_id = chat_id_of(params)
    message_id = message_id_of(params)
    with STATE.lock:
        record = STATE.messages.get(message_id)
        if record is not None and record["chat_id"] == chat_id and not record["deleted"]:
            record["deleted"] = True
            return True
        user = STATE.user_messages.get(message_id)
        if (user is not None and integer(user.get("chat", {}).get("id")) == chat_id
                and message_id not in STATE.deleted_user_messages):
            STATE.deleted_user_messages.add(message_id)
            return True
    raise ApiError(400, "Bad Request: message to delete not found")


def send_chat_action(params, files, handler):
    chat_id_of(params)
    if params.get("action") not in CHAT_ACTIONS:
        raise ApiError(400, "Bad Request: wrong parameter action in request")
    return True


def set_my_commands(params, files, handler):
    commands = params.get("commands")
    if not isinstance(commands, list):
        raise ApiError(400, "Bad Request: can't parse commands JSON object")
    with STATE.lock:
        STATE.commands = commands
    return True


def get_my_commands(params, files, handler):
    with STATE.lock:
        return list(STATE.commands)


def delete_webhook(params, files, handler):
    if params.get("drop_pending_updates") is True:
        with STATE.lock:
            STATE.confirm(STATE.next_update_id)
    return True


HANDLERS = {"getMe": get_me, "getUpdates": get_updates, "sendMessage": send_message,
            "editMessageText": edit_message_text, "editMessageReplyMarkup": edit_message_reply_markup,
            "sendPhoto": send_photo, "sendMediaGroup": send_media_group,
            "answerCallbackQuery": answer_callback_query, "deleteMessage": delete_message,
            "sendChatAction": send_chat_action, "setMyCommands": set_my_commands,
            "getMyCommands": get_my_commands, "deleteWebhook": delete_webhook}


# --- Request parsing --------------------------------------------------------------------------

def header_parameters(value):
    """'type; a=1; b="x;y"' -> ('type', {'a': '1', 'b': 'x;y'}), keys lower-cased."""
    kind, _, rest = value.partition(";")
    params = {}
    for match in re.finditer(r'\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*;?', rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = raw
    return kind.strip().lower(), params


def parse_multipart(body, boundary):
    """[(name, filename or None, content_type, bytes)] of a multipart/form-data body."""
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise ApiError(400, "Bad Request: multipart/form-data boundary not found")
        position = start + 2 + len(delimiter)
    parts = []
    while True:
        if body[position:position + 2] == b"--":
            return parts  # the close delimiter; the epilogue is ignored
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise ApiError(400, "Bad Request: malformed multipart/form-data delimiter line")
        position = line_end + 2
        end = body.find(b"\r\n" + delimiter, position)
        if end < 0:
            raise ApiError(400, "Bad Request: multipart/form-data is not terminated by its boundary")
        part = body[position:end]
        position = end + 2 + len(delimiter)
        head_end = part.find(b"\r\n\r\n")
        if head_end < 0:
            raise ApiError(400, "Bad Request: headers in multipart/form-data are empty")
        name, filename, content_type = None, None, "application/octet-stream"
        for line in part[:head_end].decode("utf-8", errors="replace").split("\r\n"):
            if not line.strip():
                continue
            header, _, value = line.partition(":")
            header = header.strip().lower()
            if header == "content-disposition":
                disposition, fields = header_parameters(value.strip())
                if disposition != "form-data":
                    raise ApiError(400, "Bad Request: expected form-data content disposition")
                name = fields.get("name")
                if "filename" in fields:
                    filename = fields["filename"]
            elif header == "content-type":
                content_type = value.strip()
        if not name:
            raise ApiError(400, "Bad Request: field name in multipart/form-data not found")
        parts.append((name, filename, content_type, part[head_end + 4:]))


def normalise(params):
    """Decodes JSON-typed, integer and boolean parameters that arrived as text."""
    for key in list(params):
        value = params[key]
        if key in JSON_PARAMS and isinstance(value, str):
            try:
                params[key] = json.loads(value)
            except ValueError:
                name = key.replace("_", " ")
                raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
        elif key in INT_PARAMS and isinstance(value, str) and INTEGER.fullmatch(value.strip()):
            params[key] = int(value.strip())
        elif key == "timeout" and isinstance(value, str):
            try:
                number = float(value)
                params[key] = int(number) if number.is_integer() else number
            except ValueError:
                pass
        elif key in BOOL_PARAMS and isinstance(value, str) and value.lower() in ("true", "false"):
            params[key] = value.lower() == "true"
    return params


def parse_request(query, content_type_header, body):
    """(params, files, encoding) of a Bot API request: the query string, then the body."""
    params, files, encoding = {}, {}, "query"
    try:
        params.update(parse_qsl(query, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise ApiError(400, "Bad Request: strings must be encoded in UTF-8") from None
    content_type, fields = header_parameters(content_type_header or "")
    if not body:
        return normalise(params), files, encoding
    if content_type == "application/json":
        encoding = "json"
        try:
            value = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "Bad Request: strings must be encoded in UTF-8") from None
        except ValueError as error:
            raise ApiError(400, f"Bad Request: can't parse JSON body: {error}") from None
        if not isinstance(value, dict):
            raise ApiError(400, "Bad Request: JSON object expected")
        params.update(value)
    elif content_type == "application/x-www-form-urlencoded":
        encoding = "form"
        try:
            params.update(parse_qsl(body.decode("utf-8", errors="strict"), keep_blank_values=True,
                                    errors="strict"))
        except UnicodeDecodeError:
            raise ApiError(400, "Bad Request: strings must be encoded in UTF-8") from None
    elif content_type == "multipart/form-data":
        encoding = "multipart"
        boundary = fields.get("boundary")
        if not boundary:
            raise ApiError(400, "Bad Request: multipart/form-data without a boundary")
        for name, filename, part_type, data in parse_multipart(body, boundary):
            if filename is not None:
                files[name] = {"filename": filename, "content_type": part_type, "data": data}
            else:
                try:
                    params[name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise ApiError(400, "Bad Request: strings must be encoded in UTF-8") from None
    else:
        encoding = content_type or "unknown"
    return normalise(params), files, encoding


# --- The handler ------------------------------------------------------------------------------

class Handler(FakeHandler):
    server_version = "FakeTelegram/1.0"
    log_name = "fake_telegram"
    max_body = MAX_BODY

    def client_gone(self):
        """Whether the client has closed its end (checked while a long poll waits)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # -- the Bot API --

    def api(self, path, query):
        match = re.fullmatch(r"/bot([^/]*)/([^/]+)", unquote(path))
        given = match.group(2) if match else unquote(path).rstrip("/").rsplit("/", 1)[-1]
        method = METHOD_BY_LOWER.get(given.lower(), given)
        entry = {"seq": None, "method": method, "path": path, "params": {}, "encoding": None,
                 "time_ms": now_ms(), "end_ms": None, "status": None, "description": None, "outcome": None}
        if method == "sendPhoto":
            entry["photo"] = None
        if method == "sendMediaGroup":
            entry["photos"] = []
        STATE.record_call(entry)
        status, description, outcome = None, None, "ok"
        try:
            parse_error = None
            params, files = {}, {}
            try:
                body = self.read_body()
                params, files, encoding = parse_request(query, self.headers.get("Content-Type"), body)
                STATE.finish_call(entry, params=json.loads(json.dumps(params)), encoding=encoding)
            except BadRequest as error:
                self.close_connection = True
                parse_error = ApiError(413 if "too large" in str(error) else 400,
                                       "Request Entity Too Large" if "too large" in str(error)
                                       else f"Bad Request: {error}")
            except ApiError as error:
                parse_error = error
            if method == "sendPhoto":
                photo = files.get("photo")
                if photo is None and isinstance(params.get("photo"), str) and params["photo"].startswith("attach://"):
                    photo = files.get(params["photo"][len("attach://"):])
                if photo is not None:
                    info = photo_info(photo)
                    STATE.finish_call(entry, photo={key: info[key] for key in
                                                    ("bytes", "sha256", "content_type", "filename", "kind")})
            if method == "sendMediaGroup" and isinstance(params.get("media"), list):
                photos = []
                for item in params["media"]:
                    given = item.get("media") if isinstance(item, dict) else None
                    part = files.get(given[len("attach://"):]) if isinstance(given, str) and given.startswith("attach://") else None
                    if part is not None:
                        info = photo_info(part)
                        photos.append({key: info[key] for key in ("bytes", "sha256", "content_type", "filename", "kind")})
                STATE.finish_call(entry, photos=photos)
            try:
                if match is None:
                    raise ApiError(404, "Not Found")
                if match.group(1) != STATE.token:
                    raise ApiError(401, "Unauthorized")
                if method not in HANDLERS:
                    raise ApiError(404, "Not Found")
                if parse_error is not None:
                    raise parse_error
                script = STATE.next_script(method) or {}
                if script.get("delay_ms", 0) > 0:
                    time.sleep(script["delay_ms"] / 1000.0)
                if script.get("drop"):
                    self.drop()
                    raise Dropped()
                scripted_status = script.get("status", 429 if "retry_after" in script else 200)
                if scripted_status >= 400:
                    raise ApiError(scripted_status, script.get("description"), script.get("retry_after"))
                result = HANDLERS[method](params, files, self)
                status = 200
                self.send_json(200, {"ok": True, "result": result})
            except ApiError as error:
                status, description, outcome = error.status, error.description, "error"
                answer = {"ok": False, "error_code": error.status, "description": error.description}
                if error.retry_after is not None:
                    answer["parameters"] = {"retry_after": error.retry_after}
                self.send_json(error.status, answer)
        except Dropped:
            status, description, outcome = None, None, "dropped"
        except ClientGone:
            self.close_connection = True
            status, outcome = None, "client_closed"
        except Exception as error:  # a bug in the fake: say so rather than hang up
            import traceback
            traceback.print_exc(file=sys.stderr)
            status, description, outcome = 500, f"Internal Server Error: fake_telegram bug: {error!r}", "error"
            self.close_connection = True
            try:
                self.send_json(500, {"ok": False, "error_code": 500, "description": description})
            except ClientGone:
                pass
        finally:
            STATE.finish_call(entry, end_ms=now_ms(), status=status, description=description, outcome=outcome)
            if self.verbose:
                sys.stderr.write(f"fake_telegram: {method} -> {status} {description or ''}\n")

    # -- control --

    def control(self, path, query, raw):
        def only(body, allowed):
            unknown = sorted(set(body) - set(allowed))
            if unknown:
                raise BadRequest(f"unknown field '{unknown[0]}' (known: {', '.join(allowed)})")

        if path == "/_control/updates":
            self.require(path, "POST")
            body = json_object(raw)
            only(body, ["updates"])
            items = body.get("updates")
            if not isinstance(items, list):
                raise BadRequest("updates must be a list")
            for index, item in enumerate(items):
                validate_update(index, item)
            update_ids, message_ids = STATE.inject([json.loads(json.dumps(item)) for item in items])
            self.send_json(200, {"ok": True, "update_ids": update_ids, "message_ids": message_ids})
        elif path == "/_control/callback_query":
            self.require(path, "POST")
            body = json_object(raw)
            check_fields("callback_query", body, CALLBACK_FIELDS)
            if not isinstance(body.get("message_id"), int) or not isinstance(body.get("data"), str):
                raise BadRequest("callback_query needs a message_id (a message the bot sent) and data")
            if not 1 <= len(body["data"].encode("utf-8")) <= MAX_CALLBACK_DATA:
                raise BadRequest(f"callback data is 1 to {MAX_CALLBACK_DATA} bytes, as Telegram allows")
            update_id, query_id = STATE.inject_callback(body)
            self.send_json(200, {"ok": True, "update_id": update_id, "callback_query_id": query_id})
        elif path == "/_control/callbacks":
            self.require(path, "GET")
            with STATE.lock:
                listed = [dict(query, id=key) for key, query in STATE.callbacks.items()]
            self.send_json(200, listed)
        elif path == "/_control/script":
            self.require(path, "POST")
            body = json_object(raw)
            only(body, ["method", "responses"])
            method = METHOD_BY_LOWER.get(str(body.get("method", "")).lower())
            if method is None:
                raise BadRequest(f"method must be one of {', '.join(METHODS)}")
            pending = STATE.add_scripts(method, script_responses(body, validate_script))
            self.send_json(200, {"ok": True, "method": method, "pending": pending})
        elif path == "/_control/limits":
            self.require(path, "POST")
            body = json_object(raw)
            only(body, ["edit_min_interval_ms"])
            interval = body.get("edit_min_interval_ms", 0)
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
                raise BadRequest("edit_min_interval_ms must be a number >= 0")
            STATE.set_limits(interval)
            self.send_json(200, {"ok": True, "edit_min_interval_ms": interval})
        elif path == "/_control/reset":
            self.require(path, "POST")
            body = json_object(raw)
            only(body, ["first_update_id"])
            first = body.get("first_update_id", 1)
            if isinstance(first, bool) or not isinstance(first, int) or first < 1:
                raise BadRequest("first_update_id must be an integer >= 1")
            STATE.reset(first)
            self.send_json(200, {"ok": True})
        elif path == "/_control/calls":
            self.require(path, "GET")
            method = self.query_value(query, "method")
            self.send_json(200, STATE.calls_of(METHOD_BY_LOWER.get(method.lower(), method) if method else None))
        elif path == "/_control/messages":
            self.require(path, "GET")
            chat = self.query_value(query, "chat_id")
            if chat is not None and integer(chat) is None:
                raise BadRequest("chat_id must be an integer")
            self.send_json(200, STATE.messages_of(integer(chat) if chat is not None else None))
        elif path == "/_control/state":
            self.require(path, "GET")
            self.send_json(200, STATE.summary())
        elif path == "/_control/scripts":
            self.require(path, "GET")
            self.send_json(200, STATE.pending_scripts())
        else:
            self.control_default(path)


def validate_script(index, response):
    check_fields(f"responses[{index}]", response, SCRIPT_FIELDS, bool_fields=("drop",))
    status = response.get("status")
    if status is not None and status != 200 and not 400 <= status <= 599:
        raise BadRequest(f"responses[{index}].status must be 200 or 400...599")
    if "retry_after" in response and (response["retry_after"] < 0 or status not in (None, 429)):
        raise BadRequest(f"responses[{index}].retry_after needs status 429 (or none) and a value >= 0")
    if "description" in response and (status is None or status < 400):
        raise BadRequest(f"responses[{index}].description needs a status >= 400")
    if response.get("delay_ms", 0) < 0:
        raise BadRequest(f"responses[{index}].delay_ms must not be negative")


def validate_update(index, item):
    if isinstance(item, dict) and "update" in item:
        if len(item) != 1 or not isinstance(item["update"], dict):
            raise BadRequest(f"updates[{index}]: an \"update\" item is that one object and nothing else")
        return
    check_fields(f"updates[{index}]", item, UPDATE_FIELDS, known_prefix="update, ")
    if "text" not in item:
        raise BadRequest(f"updates[{index}] needs a text")
    if item.get("chat_type", "private") not in CHAT_TYPES:
        raise BadRequest(f"updates[{index}].chat_type must be one of {', '.join(CHAT_TYPES)}")


def main(argv=None):
    global STATE
    token = (("--token",), {"default": DEFAULT_TOKEN, "help": f"the one valid bot token (default {DEFAULT_TOKEN})"})
    parser, arguments = parse_arguments("Fake Telegram Bot API server for tests.", argv, extra=[token])
    if not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", arguments.token):
        parser.error("--token must look like <digits>:<letters, digits, _ or ->")
    STATE = State(arguments.token)
    return serve("fake_telegram", arguments, Handler)


if __name__ == "__main__":
    sys.exit(main())
