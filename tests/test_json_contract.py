"""The pinned JSON contract (tests/contract/json_contract.json).

Users and CI pipelines script against the members of every ``--json`` output
and file format.  Each schema name (``control-plane.NAME/N``) pins its
top-level members and its closed nested objects; a change to those members
must come with a new version: a new ``SCHEMA``, a new schema file and a new
pin.  Every ``Result`` subclass in ``control_plane.operations`` needs a
schema file and a pin.  The failure messages say exactly what to add.
"""

from __future__ import annotations

import collections.abc
import csv
import dataclasses
import enum
import importlib
import json
import pkgutil
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import control_plane.operations
from control_plane.operations.results import DocumentResult, FindingsResult, Result
from control_plane.schemas import file_name, load_schema, schema_names
from tests.contract_keys import nested_members, schema_keys, top_keys
from tests.json_outputs import FILES, LINES, ROWS, Exercised, exercise

CONTRACT_FILE = "tests/contract/json_contract.json"
CONTRACT_PATH = Path(__file__).resolve().parents[1] / CONTRACT_FILE
CONTRACT = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
PINS: dict[str, dict[str, Any]] = CONTRACT["schemas"]
DOCUMENT_RESULTS: dict[str, list[str]] = CONTRACT["document_results"]
SCHEMA_DIR = "control_plane/schemas"
HOW_TO_BUMP = "see the README section 'JSON schemas and the contract'"


def result_classes() -> list[type[Result]]:
    """Every Result subclass defined in any control_plane.operations module."""
    for module in pkgutil.walk_packages(
        control_plane.operations.__path__, control_plane.operations.__name__ + "."
    ):
        importlib.import_module(module.name)
    found: dict[str, type[Result]] = {}
    pending = list(Result.__subclasses__())
    while pending:
        cls = pending.pop()
        found[qualified(cls)] = cls
        pending.extend(cls.__subclasses__())
    return [found[name] for name in sorted(found)]


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _sample_value(hint: Any) -> Any:
    """A value of type ``hint`` that exercises the most members (one item per list of objects)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args:
            return None
        return _sample_value(args[0])
    if origin is typing.Literal:
        return args[0]
    if origin is tuple:
        item = args[0] if args else str
        return (_sample_value(item),) if dataclasses.is_dataclass(item) else ()
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        return {}
    if origin is list:
        return []
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return sample(hint)
    simple = {
        str: "x", int: 0, bool: False, float: 0.0, bytes: b"",
        Path: Path("x"), datetime: datetime(2000, 1, 1, tzinfo=UTC),
    }  # fmt: skip
    return simple.get(hint)


def sample(cls: type) -> Any:
    """An instance of dataclass ``cls`` built from its field types."""
    hints = typing.get_type_hints(cls)
    values = {
        field.name: _sample_value(hints[field.name])
        for field in dataclasses.fields(cls)
        if field.init
    }
    return cls(**values)


def sample_json(cls: type[Result]) -> Any:
    """``to_json()`` of a sample instance, or a failure saying how to make one buildable."""
    try:
        return sample(cls).to_json()
    except Exception as exc:  # any failure here is the test's to explain, not to hide
        pytest.fail(
            f"cannot build a sample {qualified(cls)} from its field types to read its keys "
            f"({type(exc).__name__}: {exc}); teach _sample_value in {__name__} the field type"
        )


def pin_snippet(name: str, keys: dict[str, Any]) -> str:
    return json.dumps({name: keys}, indent=2)[1:-1].strip()


# Bases that no command returns as such.
BASES = (Result, FindingsResult)
CLASSES = [cls for cls in result_classes() if cls not in BASES]
PLAIN = [cls for cls in CLASSES if not issubclass(cls, DocumentResult)]


@pytest.mark.parametrize("cls", CLASSES, ids=qualified)
def test_every_result_class_has_a_schema_file_and_a_pin(cls: type[Result]) -> None:
    name = qualified(cls)
    if issubclass(cls, DocumentResult):
        assert name in DOCUMENT_RESULTS, (
            f"{name} prints a document as it is (a DocumentResult): list the schema names of "
            f'the documents it prints under "document_results" in {CONTRACT_FILE}, e.g. '
            f'"{name}": ["control-plane.NAME/1"], and add a schema and pin for each'
        )
        for schema in DOCUMENT_RESULTS[name]:
            assert schema in PINS, f"{name} prints {schema}: add its pin to {CONTRACT_FILE}"
        return
    assert "SCHEMA" in vars(cls), (
        f"{name} inherits SCHEMA {cls.SCHEMA!r}: give it its own, "
        f'SCHEMA: ClassVar[str] = "control-plane.NAME/1"'
    )
    keys = top_keys(sample_json(cls))
    assert cls.SCHEMA in schema_names(), (
        f"{name} has no JSON Schema: add {SCHEMA_DIR}/{file_name(cls.SCHEMA)} "
        f"(draft 2020-12; copy a neighbour, e.g. control-plane.sync-1.schema.json) describing "
        f"the keys {keys}"
    )
    assert cls.SCHEMA in PINS, (
        f'{name} has no pin: add this under "schemas" in {CONTRACT_FILE}:\n'
        + pin_snippet(cls.SCHEMA, schema_keys(load_schema(cls.SCHEMA)))
    )


@pytest.mark.parametrize("cls", PLAIN, ids=qualified)
def test_result_keys_match_their_pin(cls: type[Result]) -> None:
    if cls.SCHEMA not in PINS:
        pytest.skip(
            "no pin yet: test_every_result_class_has_a_schema_file_and_a_pin says what to add"
        )
    assert_matches_pin(cls.SCHEMA, sample_json(cls), f"{qualified(cls)}.to_json()")


def assert_matches_pin(name: str, document: Any, what: str) -> None:
    """``document``'s members are the pin's, at the top and in every pinned nested object."""
    pin = PINS[name]
    problems = []
    pairs = [("top-level keys", top_keys(document), pin["keys"])]
    for path, pinned in pin["nested"].items():
        pairs += [(path, members, pinned) for members in nested_members(document, path)]
    for where, actual, pinned in pairs:
        if actual != pinned:
            added = sorted(set(actual) - set(pinned))
            removed = sorted(set(pinned) - set(actual))
            problem = f"{where}: added {added}, removed {removed}"
            if problem not in problems:
                problems.append(problem)
    stem, version = name.rsplit("/", 1)
    bumped = f"{stem}/{int(version) + 1}"
    assert not problems, (
        f"{what} no longer matches the pinned contract of {name}: {'; '.join(problems)}.\n"
        f"Users script against these keys. Bump the version: SCHEMA = {bumped!r}, add "
        f"{SCHEMA_DIR}/{file_name(bumped)} and a pin for {bumped} in {CONTRACT_FILE} "
        f"(keep the old ones); {HOW_TO_BUMP}."
    )


@pytest.mark.parametrize("name", sorted(set(PINS) | set(schema_names())))
def test_pins_and_schema_files_agree(name: str) -> None:
    assert name in schema_names(), f"{name} is pinned but {SCHEMA_DIR}/{file_name(name)} is missing"
    from_schema = schema_keys(load_schema(name))
    assert name in PINS, (
        f'{SCHEMA_DIR}/{file_name(name)} has no pin: add this under "schemas" in '
        f"{CONTRACT_FILE}:\n" + pin_snippet(name, from_schema)
    )
    assert from_schema == PINS[name], (
        f"{SCHEMA_DIR}/{file_name(name)} documents other keys than the pin of {name}. A schema "
        f"version's keys never change: publish a new version instead; {HOW_TO_BUMP}."
    )


@pytest.fixture(scope="module")
def exercised(tmp_path_factory: pytest.TempPathFactory) -> Exercised:
    return exercise(tmp_path_factory.mktemp("contract"))


def test_real_command_outputs_match_their_pins(exercised: Exercised) -> None:
    for label, document in exercised.outputs.items():
        name = document.get("schema")
        assert name in PINS, f"cpctl {label} --json printed schema {name!r}, which has no pin"
        assert_matches_pin(name, document, f"cpctl {label} --json")


def test_real_files_match_their_pins(exercised: Exercised) -> None:
    root = exercised.root
    documents: list[tuple[str, Any, str]] = []
    for path, name in FILES.items():
        documents.append((name, json.loads((root / path).read_text(encoding="utf-8")), path))
    for path, name in LINES.items():
        lines = (root / path).read_text(encoding="utf-8").splitlines()
        documents.extend((name, json.loads(line), path) for line in lines)
    for path, name in ROWS.items():
        with (root / path).open(newline="", encoding="utf-8") as handle:
            documents.extend((name, row, path) for row in csv.DictReader(handle))
    for name, document, what in documents:
        assert_matches_pin(name, document, what)


def test_a_changed_key_without_a_bump_fails_with_instructions() -> None:
    document = {"schema": "control-plane.sync/1", "ok": True, "path": "p", "changed": True,
                "written": True, "packages": 0, "file_count": 0, "warnings": []}  # fmt: skip
    with pytest.raises(AssertionError) as caught:
        assert_matches_pin("control-plane.sync/1", document, "example")
    message = str(caught.value)
    assert "added ['file_count'], removed ['files']" in message
    assert "SCHEMA = 'control-plane.sync/2'" in message
    assert "control-plane.sync-2.schema.json" in message
