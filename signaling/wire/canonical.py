"""Canonical JSON and base64url: the byte form that both sides of the document protocol sign,
hash and encrypt (docs/document-protocol.md). Defined once here; the server and the
endpoint agent import it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1

_B64U = re.compile(r"[A-Za-z0-9_-]*")  # RFC 8785 §3.2.2.3: numbers must survive IEEE 754 doubles

class CanonicalJSONError(ValueError):
    """A value cannot be written as canonical JSON (a float, a huge integer, a lone surrogate)."""

def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

def b64u_decode(text: str) -> bytes:
    if not isinstance(text, str) or not _B64U.fullmatch(text):
        raise ValueError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url without padding") from exc

def _string(value: str) -> str:
    # json.dumps with ensure_ascii=False escapes exactly `"`, `\` and U+0000..U+001F the way
    # ECMAScript JSON.stringify does (\b \t \n \f \r, else \u00xx lower-case) — RFC 8785 §3.2.2.2.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("strings must not contain lone surrogates") from exc
    return json.dumps(value, ensure_ascii=False)

def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalJSONError(f"integer {value} is outside ±(2^53−1)")
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise CanonicalJSONError("floats are not allowed in canonical records; use integers")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        if not all(isinstance(key, str) for key in keys):
            raise CanonicalJSONError("object keys must be strings")
        out.append("{")
        # RFC 8785 §3.2.3: sort by UTF-16 code units, not by code points.
        for index, key in enumerate(sorted(keys, key=lambda k: k.encode("utf-16-be"))):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    else:
        raise CanonicalJSONError(f"type {type(value).__name__} is not JSON")

def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 bytes of a JSON value (objects, arrays, strings, ints, bools, null)."""
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")

def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CanonicalJSONError(f"duplicate key {key!r}")
        result[key] = value
    return result

def _reject_constant(name: str) -> Any:
    raise CanonicalJSONError(f"{name} is not allowed in canonical records")

def parse_json(text: str | bytes) -> Any:
    """Parse JSON strictly: no duplicate keys, no NaN/Infinity (floats are refused later)."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise CanonicalJSONError(f"not valid JSON: {exc.msg} at position {exc.pos}") from exc
    except UnicodeDecodeError as exc:
        raise CanonicalJSONError("not valid UTF-8") from exc
