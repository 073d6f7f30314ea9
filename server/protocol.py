"""Validation of signalling messages (docs/protocol.md). Nothing here trusts input."""

import json
from dataclasses import dataclass
from typing import Any

from server.errors import UserError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP = 32 * 1024
MAX_CANDIDATE = 1024

# type -> {field: (python types, required)}
_SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "join": {"token": ((str,), False), "lesson": ((str,), False), "role": ((str,), False)},
    "offer": {"sdp": ((str,), True), "media": ((list,), False)},
    "candidate": {"candidate": ((dict, type(None)), True)},
    "stop": {},
    "quality": {"cap": ((str,), True)},
    "record": {"on": ((bool,), True)},
    "hand": {"up": ((bool,), True)},
    "stage": {"peer": ((str, type(None)), True)},
    "mute": {"peer": ((str,), True), "on": ((bool,), True)},
    "mute_all": {"on": ((bool,), True)},
    "chat": {"text": ((str,), True)},
    "leave": {},
    "ping": {},
}


@dataclass(frozen=True)
class Message:
    type: str
    fields: dict[str, Any]

    def get(self, name: str) -> Any:
        return self.fields.get(name)


def bad(message: str) -> UserError:
    return UserError("bad_message", message)


def parse_message(text: str) -> Message:
    if len(text) > MAX_MESSAGE_BYTES:
        raise bad(f"message too large ({len(text)} bytes, limit {MAX_MESSAGE_BYTES})")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise bad("message is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad("message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise bad("message has no string field 'type'")
    schema = _SCHEMAS.get(kind)
    if schema is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise bad(f"unknown message type {shown!r}")
    fields: dict[str, Any] = {}
    for name, (types, required) in schema.items():
        if name not in data:
            if required:
                raise bad(f"'{kind}' needs the field '{name}'")
            continue
        value = data[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join("null" if t is type(None) else _TYPE_NAMES[t] for t in types)
            raise bad(f"'{kind}.{name}' must be {expected}")
        if not _unicode(value):
            raise bad(f"'{kind}.{name}' is not valid Unicode text")
        fields[name] = value
    if kind == "offer" and len(fields["sdp"]) > MAX_SDP:
        raise bad(f"'offer.sdp' is too large (limit {MAX_SDP} characters)")
    return Message(kind, fields)


def _unicode(value: Any) -> bool:
    """Whether a string (or a list's strings) can be written out as UTF-8. JSON's
    escapes can carry lone surrogates ("\\ud800"), which no file or page can."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_unicode(item) for item in value)
    return True


_TYPE_NAMES = {
    str: "a string",
    dict: "an object",
    int: "a number",
    list: "a list",
    bool: "true or false",
}


@dataclass(frozen=True)
class Candidate:
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


def parse_candidate(value: dict[str, Any] | None) -> Candidate | None:
    """The `candidate` field of a `candidate` message; None ends the candidates."""
    if value is None:
        return None
    text = value.get("candidate")
    mid = value.get("sdpMid")
    index = value.get("sdpMLineIndex")
    if not isinstance(text, str) or len(text) > MAX_CANDIDATE:
        raise UserError("bad_candidate", "'candidate.candidate' must be a string of candidate SDP")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise UserError("bad_candidate", "'candidate.sdpMid' must be a short string or null")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64
    ):
        raise UserError("bad_candidate", "'candidate.sdpMLineIndex' must be a small number or null")
    if mid is None and index is None:
        raise UserError("bad_candidate", "a candidate needs 'sdpMid' or 'sdpMLineIndex'")
    return Candidate(text, mid, index)
