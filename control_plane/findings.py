"""Findings: what checks that report many problems return instead of raising."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    """One problem a check found.

    ``rule`` is a stable machine-readable name (``id-format``, ``digest-mismatch``,
    ...); ``subject`` names the file, row or package concerned; ``message`` is
    one human-readable line.
    """

    subject: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """JSON form used by every ``--json`` report."""
        return {"subject": self.subject, "rule": self.rule, "message": self.message}

    def __str__(self) -> str:
        return f"{self.subject}: {self.message} [{self.rule}]"
