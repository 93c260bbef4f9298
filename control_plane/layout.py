"""Where things live inside a control plane root, and how a root is found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "control_plane.toml"

# Paths an archive may never write to: the root's own machinery.
RESERVED_TOP_LEVEL = frozenset(
    {
        ".git",
        ".control_plane",
        "control_plane.toml",
        "control_plane.lock",
        "ledger",
        ".ledger",
        "ids",
        "packages_store",
        "registries",
        "keys",
        "MANIFEST.json",
    }
)


# The root's own directories, parents first: none may be a symbolic link, or a hostile
# checkout (git stores links) would have cpctl read and write them somewhere else.
# keys/private is not here: keeping private keys on another volume is a fair choice.
MACHINERY_DIRS = (
    ".control_plane",
    ".control_plane/merkle",
    ".control_plane/txn",
    "ledger",
    ".ledger",
    "registries",
    "registries/compiled",
    "packages_store",
    "keys",
    "keys/trusted",
    "keys/revoked",
    "ids",
    "ids/cards",
    "modules",
)


@dataclass(frozen=True)
class RootLayout:
    """Every well-known path of one root, derived from the root directory alone."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def registries(self) -> Path:
        return self.root / "registries"

    @property
    def packages_registry(self) -> Path:
        return self.registries / "packages_registry.csv"

    @property
    def control_registry(self) -> Path:
        return self.registries / "control_plane_registry.csv"

    @property
    def compiled(self) -> Path:
        return self.registries / "compiled"

    @property
    def store(self) -> Path:
        return self.root / "packages_store"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def modules(self) -> Path:
        return self.root / "modules"

    @property
    def manifest(self) -> Path:
        return self.root / "MANIFEST.json"

    @property
    def state(self) -> Path:
        """Per-machine state (lock, journals, caches); never committed."""
        return self.root / ".control_plane"

    @property
    def ledger_key(self) -> Path:
        """The private ed25519 key that signs checkpoints (mode 0600, never committed)."""
        return self.state / "ledger.key"

    @property
    def ledger_public_key(self) -> Path:
        """The committed public half of :attr:`ledger_key`."""
        return self.ledger / "ledger.pub"

    @property
    def merkle_store(self) -> Path:
        """The ledger's Merkle node store (derived; rebuilt from the ledger when missing)."""
        return self.state / "merkle"

    @property
    def lock(self) -> Path:
        return self.state / "root.lock"

    @property
    def transactions(self) -> Path:
        return self.state / "txn"

    def linked_machinery(self) -> str | None:
        """The first of the root's own directories that is a symbolic link, if any."""
        return next((rel for rel in MACHINERY_DIRS if (self.root / rel).is_symlink()), None)

    def relative(self, path: Path) -> str:
        """Root-relative POSIX form of a path inside the root."""
        return path.relative_to(self.root).as_posix()

    def shown(self, path: Path) -> str:
        """``path`` resolved, root-relative when it is inside the root, else absolute."""
        return shown_path(self.root, path.resolve())


def shown_path(root: Path, path: Path) -> str:
    """``path`` as users see it: root-relative POSIX inside the root, else as given."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def find_root(flag: str | None, env_value: str | None, cwd: Path) -> Path:
    """Resolve the root: ``--root`` > ``CONTROL_PLANE_ROOT`` > nearest ancestor with a config > cwd."""
    for explicit in (flag, env_value):
        if explicit:
            return Path(explicit).expanduser().resolve()
    here = cwd.resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    return here


def is_reserved(rel_path: str) -> bool:
    """True when a root-relative path would touch the root's own machinery."""
    first = rel_path.split("/", 1)[0]
    return first in RESERVED_TOP_LEVEL
