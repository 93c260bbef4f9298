"""Roles, actions and the deny-by-default policy that joins them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from control_plane.auth.identity import Identity, shown
from control_plane.errors import DeniedError


class Role(StrEnum):
    """A role a user holds; the order of declaration is strongest first."""

    ADMIN = "admin"
    MAINTAINER = "maintainer"
    AUDITOR = "auditor"
    READER = "reader"


class Action(StrEnum):
    """Something an operation does that the policy must allow."""

    CREATE = "create"
    INSTALL = "install"
    UPDATE = "update"
    REMOVE = "remove"
    PACK = "pack"
    VERIFY = "verify"
    HASH_UPDATE = "hash_update"
    TRUST = "trust"
    OVERRIDE = "override"  # --allow-experimental/-deprecated/-downgrade, vouching tiers
    DEPRECATE = "deprecate"


ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Action),
        Role.MAINTAINER: frozenset(
            {Action.INSTALL, Action.UPDATE, Action.REMOVE, Action.PACK, Action.VERIFY}
        ),
        Role.AUDITOR: frozenset({Action.VERIFY}),
        Role.READER: frozenset({Action.VERIFY}),
    }
)

_STRENGTH: tuple[Role, ...] = tuple(Role)
_KNOWN = ", ".join(role.value for role in Role)


def _resolve(identity: Identity) -> tuple[tuple[Role, ...], list[str]]:
    known: list[Role] = []
    unknown: list[str] = []
    for name in identity.role_names:
        try:
            role = Role(name)
        except ValueError:
            unknown.append(name)
            continue
        if role not in known:
            known.append(role)
    return tuple(known), unknown


def authorize(identity: Identity, action: Action) -> Role:
    """The strongest of ``identity``'s roles that allows ``action``.

    Deny by default: no role, any unknown role name (even beside a known one)
    or no role allowing the action is a refusal.

    Raises:
        DeniedError: with ``actor``, ``action`` and a short ``reason`` for the ledger.
    """
    user = shown(identity.user)
    roles, unknown = _resolve(identity)
    if unknown:
        names = ", ".join(shown(name) for name in unknown)
        reason = f"unknown role {names}"
        raise DeniedError(
            f"user {user} has {reason} (known roles: {_KNOWN})",
            actor=identity.user,
            action=action.value,
            reason=reason,
        )
    if not roles:
        where = (
            "in the identity provider's role claim"
            if identity.provider == "oidc"
            else "in [authz.users]"
        )
        hint = (
            "map one of the token's claim values in [auth.oidc] role_map"
            if identity.provider == "oidc"
            else f"an admin adds {user} to [authz.users] in control_plane.toml"
        )
        raise DeniedError(
            f"user {user} has no role {where}",
            actor=identity.user,
            action=action.value,
            reason="no role",
            hint=hint,
        )
    for role in _STRENGTH:
        if role in roles and action in ROLE_ACTIONS[role]:
            return role
    label = "role" if len(roles) == 1 else "roles"
    held = ", ".join(role.value for role in roles)
    reason = f"{label} {held} may not {action.value}"
    raise DeniedError(
        f"user {user} ({label} {held}) may not {action.value}",
        actor=identity.user,
        action=action.value,
        reason=reason,
        hint="cpctl whoami lists the actions this token may take",
    )


def allowed_actions(identity: Identity) -> frozenset[Action]:
    """Every action ``identity`` may perform; empty when any role name is unknown."""
    roles, unknown = _resolve(identity)
    if unknown:
        return frozenset()
    allowed: set[Action] = set()
    for role in roles:
        allowed |= ROLE_ACTIONS[role]
    return frozenset(allowed)
