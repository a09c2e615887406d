"""Keyset-pagination cursors: the last row's sort key as an opaque, URL-safe token (base64 of JSON).

A cursor that was forged, cut short or made for another listing is a 400 naming ``cursor``, never a 500.
"""
from __future__ import annotations

import base64
import json
from typing import Callable, TypeVar

from crm_common.errors import CrmError

T = TypeVar("T")


def encode_cursor(key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, read: Callable[[dict], T]) -> T:
    """``read`` turns the decoded key into the listing's values; whatever it or the decoding raises on a
    malformed cursor (a wrong type, a missing key, a value out of range) becomes the 400."""
    try:
        return read(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))))
    except (ValueError, KeyError, TypeError, OverflowError, ArithmeticError) as exc:
        raise CrmError(f"invalid cursor: {exc}", field="cursor") from None
