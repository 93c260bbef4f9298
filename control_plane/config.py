"""The root's configuration: ``control_plane.toml`` read strictly into typed values.

Precedence is flag > environment > file > defaults.  The file is parsed with
``tomllib``; every key is known and typed, so a typo is an error (exit 2)
rather than a silently ignored setting.  This module does not read the
environment itself: callers pass the relevant variables in.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from control_plane.errors import UsageError

CONFIG_VERSION = 1
PROVIDERS = ("passthrough", "hmac", "oidc")

# Environment variables that override file settings: name -> (section, key).
ENV_OVERRIDES: Mapping[str, tuple[str, str]] = {
    "CONTROL_PLANE_AUTH_PROVIDER": ("auth", "provider"),
    "CONTROL_PLANE_LOCK_TIMEOUT": ("limits", "lock_timeout_seconds"),
}


@dataclass(frozen=True)
class AuthConfig:
    provider: str = "passthrough"
    require: bool = False


@dataclass(frozen=True)
class OidcConfig:
    issuer: str = ""
    audience: str = ""
    jwks: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_seconds: int = 0
    roles_claim: str = "roles"
    role_map: Mapping[str, str] = field(default_factory=dict)
    jwks_cache_seconds: int = 300
    fetch_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class LimitsConfig:
    max_entries: int = 100_000
    max_total_bytes: int = 8 * 1024**3
    max_file_bytes: int = 4 * 1024**3
    max_ratio: float = 200.0
    max_name_bytes: int = 1024
    max_component_bytes: int = 255
    registry_max_bytes: int = 64 * 1024**2
    registry_max_field_bytes: int = 8192
    lock_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class PackConfig:
    gzip_level: int = 6


@dataclass(frozen=True)
class IntegrityConfig:
    include: tuple[str, ...] = ("**",)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    """Supply-chain policy: signatures, signed registry manifests and their thresholds."""

    require_signatures: bool = False  # unsigned, unknown-key or revoked-key archives are refused
    manifest_threshold: int = 1  # distinct trusted keys that must sign a registry manifest
    max_manifest_version_jump: int = 1000  # a larger jump could lock out later manifests


@dataclass(frozen=True)
class Config:
    """Everything a root can configure, fully typed and defaulted."""

    auth: AuthConfig = field(default_factory=AuthConfig)
    oidc: OidcConfig = field(default_factory=OidcConfig)
    users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)


def _expect(where: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    # bool is an int in Python; a setting typed int must not accept true/false.
    if isinstance(value, bool) and kind is not bool:
        raise UsageError(f"{where} must be {_kind_name(kind)}, not a boolean")
    if not isinstance(value, kind):
        raise UsageError(f"{where} must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)


def _coerce(where: str, value: Any, annotation: str) -> Any:
    if annotation == "bool":
        return _expect(where, value, bool)
    if annotation == "int":
        return _expect(where, value, int)
    if annotation == "float":
        return float(_expect(where, value, (int, float)))
    if annotation == "str":
        return _expect(where, value, str)
    if annotation == "tuple[str, ...]":
        items = _expect(where, value, list)
        return tuple(_expect(f"{where}[{i}]", item, str) for i, item in enumerate(items))
    if annotation == "Mapping[str, str]":
        table = _expect(where, value, dict)
        return {str(k): _expect(f"{where}.{k}", v, str) for k, v in table.items()}
    raise AssertionError(f"unsupported setting type {annotation}")


def _section(name: str, cls: type[Any], table: Any, base: Any) -> Any:
    table = _expect(f"[{name}]", table, dict)
    known = {f.name: str(f.type) for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            hint = ", ".join(sorted(known))
            raise UsageError(f"unknown setting {name}.{key} (known: {hint})")
        changes[key] = _coerce(f"{name}.{key}", value, known[key])
    return replace(base, **changes)


def _users(table: Any) -> dict[str, tuple[str, ...]]:
    table = _expect("[authz.users]", table, dict)
    users: dict[str, tuple[str, ...]] = {}
    for user, roles in table.items():
        if isinstance(roles, str):
            users[user] = (roles,)
        else:
            users[user] = _coerce(f"authz.users.{user}", roles, "tuple[str, ...]")
    return users


def parse_config(data: Mapping[str, Any], base: Config | None = None) -> Config:
    """Typed config from a parsed TOML document.

    Raises:
        UsageError: unknown key, wrong type, or an invalid value.
    """
    config = base or Config()
    for key, value in data.items():
        if key == "version":
            if _expect("version", value, int) != CONFIG_VERSION:
                raise UsageError(
                    f"unsupported config version {value} (this tool reads {CONFIG_VERSION})"
                )
        elif key == "auth":
            auth_table = dict(_expect("[auth]", value, dict))
            oidc_table = auth_table.pop("oidc", None)
            config = replace(config, auth=_section("auth", AuthConfig, auth_table, config.auth))
            if oidc_table is not None:
                config = replace(
                    config, oidc=_section("auth.oidc", OidcConfig, oidc_table, config.oidc)
                )
        elif key == "authz":
            authz = _expect("[authz]", value, dict)
            for sub in authz:
                if sub != "users":
                    raise UsageError(f"unknown setting authz.{sub} (known: users)")
            config = replace(config, users=_users(authz.get("users", {})))
        elif key in _SECTIONS:
            cls, attr = _SECTIONS[key]
            config = replace(config, **{attr: _section(key, cls, value, getattr(config, attr))})
        else:
            raise UsageError(
                f"unknown setting {key!r} (known: version, auth, authz, {', '.join(_SECTIONS)})"
            )
    _check_values(config)
    return config


_SECTIONS: Mapping[str, tuple[type[Any], str]] = {
    "limits": (LimitsConfig, "limits"),
    "pack": (PackConfig, "pack"),
    "integrity": (IntegrityConfig, "integrity"),
    "policy": (PolicyConfig, "policy"),
}


def _check_values(config: Config) -> None:
    if config.auth.provider not in PROVIDERS:
        raise UsageError(
            f"auth.provider must be one of {', '.join(PROVIDERS)}, not {config.auth.provider!r}"
        )
    if not 0 <= config.pack.gzip_level <= 9:
        raise UsageError("pack.gzip_level must be between 0 and 9")
    if config.limits.lock_timeout_seconds < 0:
        raise UsageError("limits.lock_timeout_seconds must not be negative")
    for name in ("max_entries", "max_total_bytes", "max_file_bytes", "max_name_bytes"):
        if getattr(config.limits, name) <= 0:
            raise UsageError(f"limits.{name} must be positive")
    if config.limits.max_ratio <= 1:
        raise UsageError("limits.max_ratio must be greater than 1")
    if config.policy.manifest_threshold < 1:
        raise UsageError("policy.manifest_threshold must be at least 1")
    if config.policy.max_manifest_version_jump < 1:
        raise UsageError("policy.max_manifest_version_jump must be at least 1")


def load_config(
    path: Path,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], Any] | None = None,
) -> Config:
    """Read ``path`` (defaults when absent), then apply environment and flag overrides.

    Raises:
        UsageError: unreadable or invalid TOML, unknown keys, wrong types.
    """
    document: dict[str, Any] = {}
    if path.exists():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {path.name}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path.name} is not valid TOML: {exc}") from exc
        except RecursionError:  # tomllib parses nested arrays and tables recursively
            raise UsageError(f"{path.name} is not valid TOML: nested too deeply") from None
    layered: dict[tuple[str, str], Any] = {}
    for variable, target in ENV_OVERRIDES.items():
        if env and env.get(variable):
            layered[target] = _from_env(variable, env[variable], target)
    layered.update(overrides or {})
    for (section, key), value in layered.items():
        table = document.setdefault(section, {})
        if not isinstance(table, dict):
            raise UsageError(f"[{section}] in {path.name} must be a table")
        table[key] = value
    try:
        return parse_config(document)
    except UsageError as exc:
        raise UsageError(f"{path.name}: {exc}") from exc


_ENV_PARSERS: Mapping[tuple[str, str], Callable[[str], Any]] = {
    ("limits", "lock_timeout_seconds"): float,
}


def _from_env(variable: str, text: str, target: tuple[str, str]) -> Any:
    parser = _ENV_PARSERS.get(target, str)
    try:
        return parser(text)
    except ValueError as exc:
        raise UsageError(f"{variable} has an invalid value") from exc


CONFIG_HEADER = """\
# Control Plane root configuration. Every key is optional; unknown keys are errors.
# [auth] provider: passthrough (development only), hmac or oidc; CONTROL_PLANE_AUTH_PROVIDER overrides.
# [auth] require = true forbids passthrough. [authz.users]: user = "role" or ["role", ...]
# with roles admin, maintainer, auditor, reader. [integrity] include/exclude: globs of the
# governed scope; files in scope that no registry row claims are reported as orphans.
# [policy] require_signatures: refuse archives without a signature by a trusted key;
# manifest_threshold: distinct trusted keys that must sign a registry manifest.
"""


def default_config_text() -> str:
    """The commented config ``cpctl init`` writes, serialised with tomli-w."""
    defaults = Config()
    document: dict[str, Any] = {
        "version": CONFIG_VERSION,
        "auth": {"provider": defaults.auth.provider, "require": defaults.auth.require},
        "authz": {"users": {}},
        "limits": {
            "max_entries": defaults.limits.max_entries,
            "max_total_bytes": defaults.limits.max_total_bytes,
            "max_file_bytes": defaults.limits.max_file_bytes,
            "max_ratio": defaults.limits.max_ratio,
            "lock_timeout_seconds": defaults.limits.lock_timeout_seconds,
        },
        "pack": {"gzip_level": defaults.pack.gzip_level},
        "integrity": {"include": list(defaults.integrity.include), "exclude": []},
        "policy": {
            "require_signatures": defaults.policy.require_signatures,
            "manifest_threshold": defaults.policy.manifest_threshold,
            "max_manifest_version_jump": defaults.policy.max_manifest_version_jump,
        },
    }
    return CONFIG_HEADER + tomli_w.dumps(document)
