"""Canonical JSON (the one byte encoding we hash and sign) and strict JSON parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Set
from datetime import UTC, datetime
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8 (not ASCII-escaped), NaN and Infinity refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def strict_loads(raw: bytes) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity and trailing data.

    Raises:
        ValueError: the bytes are not exactly one strict JSON document (or nest too deeply).
        UnicodeDecodeError: the bytes are not UTF-8.
    """
    text = raw.decode("utf-8")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        # Hostile nesting: every caller already refuses a ValueError in one clean line.
        raise ValueError("nested too deeply") from None


def load_closed_document(
    data: bytes,
    where: str,
    *,
    schema: str,
    keys: Set[str],
    limit: int,
    error: Callable[[str], Exception],
) -> dict[str, Any]:
    """One strict JSON object of ``schema`` with exactly ``keys``, at most ``limit`` bytes.

    Raises:
        ``error(message)``: too large, not strict JSON (nesting too deep included), another
            schema, or other keys.
    """
    if len(data) > limit:
        raise error(f"{where}: larger than {limit} bytes")
    try:
        document = strict_loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{where}: not a JSON document ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != schema:
        raise error(f"{where}: not a {schema} document")
    if set(document) != keys:
        raise error(f"{where}: must have exactly the keys {', '.join(sorted(keys))}")
    return document


def utc_now() -> str:
    """RFC 3339 UTC timestamp with second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
