"""YAML for the identity stores: strict reading, deterministic writing.

Reading is PyYAML's safe loader (plain data only, no object construction)
made strict: a mapping may not name a key twice (YAML requires unique keys;
PyYAML would silently keep the last, so a document could say two things at
once), and nesting too deep for the recursive composer is a clean error.
"""

from __future__ import annotations

import contextlib
from typing import Any

import yaml


class YamlError(ValueError):
    """Not one well-formed YAML document; the message says where and why."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate mapping keys."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        with contextlib.suppress(TypeError):  # unhashable: construct_mapping words that
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {str(key)[:40]!r}",
                    key_node.start_mark,
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_strict(data: bytes) -> Any:
    """The one YAML document in ``data``.

    Raises:
        UnicodeDecodeError: ``data`` is not UTF-8.
        YamlError: malformed YAML, a duplicate key, or nesting too deep.
    """
    text = data.decode("utf-8")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except RecursionError:  # PyYAML composes recursively: hostile nesting ends here
        raise YamlError("YAML nested too deeply") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if problem else ""
        raise YamlError(f"malformed YAML{line}{why}") from None


def dump(document: Any) -> bytes:
    """Block-style UTF-8 YAML with keys in the given order (same document, same bytes)."""
    text = yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    return text.encode("utf-8")
