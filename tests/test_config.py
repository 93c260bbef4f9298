"""Configuration: strict keys and types, and precedence flag > environment > file > defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from control_plane.config import Config, default_config_text, load_config, parse_config
from control_plane.errors import UsageError


def test_defaults_round_trip_through_the_written_file(tmp_path: Path) -> None:
    path = tmp_path / "control_plane.toml"
    path.write_text(default_config_text())
    assert load_config(path) == Config()
    assert tomllib.loads(default_config_text())["version"] == 1


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = tmp_path / "control_plane.toml"
    path.write_text('[auth]\nprovider = "hmac"\n[limits]\nlock_timeout_seconds = 5\n')
    assert load_config(path).auth.provider == "hmac"
    env = {"CONTROL_PLANE_AUTH_PROVIDER": "oidc", "CONTROL_PLANE_LOCK_TIMEOUT": "7"}
    config = load_config(path, env)
    assert config.auth.provider == "oidc" and config.limits.lock_timeout_seconds == 7.0
    flagged = load_config(path, env, {("limits", "lock_timeout_seconds"): 1.5})
    assert flagged.limits.lock_timeout_seconds == 1.5


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"pack": {"level": 1}}, "pack.level"),
        ({"pack": {"gzip_level": "6"}}, "pack.gzip_level"),
        ({"auth": {"require": 1}}, "auth.require"),
        ({"limits": {"max_entries": True}}, "limits.max_entries"),
        ({"auth": {"provider": "ldap"}}, "auth.provider"),
        ({"authz": {"groups": {}}}, "authz.groups"),
        ({"authz": {"users": {"bob": 3}}}, "authz.users.bob"),
        ({"integrity": {"include": "**"}}, "integrity.include"),
        ({"surprise": 1}, "surprise"),
        ({"version": 2}, "version"),
        ({"policy": {"manifest_threshold": 0}}, "policy.manifest_threshold"),
        ({"policy": {"require_signatures": "yes"}}, "policy.require_signatures"),
    ],
    ids=[
        "unknown-key",
        "string-for-int",
        "int-for-bool",
        "bool-for-int",
        "bad-provider",
        "unknown-authz",
        "bad-role-type",
        "string-for-list",
        "unknown-section",
        "future-version",
        "zero-threshold",
        "string-for-policy-bool",
    ],
)
def test_invalid_settings_are_usage_errors(document: dict, words: str) -> None:
    with pytest.raises(UsageError, match=words.replace(".", r"\.")):
        parse_config(document)


def test_users_accept_a_role_or_a_list() -> None:
    config = parse_config(
        {"authz": {"users": {"alice": "admin", "bob": ["maintainer", "auditor"]}}}
    )
    assert config.users == {"alice": ("admin",), "bob": ("maintainer", "auditor")}


@pytest.mark.parametrize("text", ["[auth\n", "x = " + "[" * 100_000, "x = " + "{a = " * 50_000])
def test_invalid_toml_is_a_usage_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "control_plane.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(path)
