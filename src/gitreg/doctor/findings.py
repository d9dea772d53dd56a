"""What `gitreg doctor` reports: findings, each fixable or not, and the report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warning", "info"]


class Finding(BaseModel):
    check: str  # e.g. "interrupted-register", "tag-not-pushed"
    severity: Severity
    message: str
    subject: str | None = None  # the version, model or file concerned
    fixable: bool = False
    fixed: bool = False
    hint: str | None = None


class DoctorReport(BaseModel):
    root: str
    ok: bool  # no error or warning remains
    fix: bool
    remote_check: bool  # every version's bytes looked for on the DVC remote, not only the staged
    versions: int = 0
    bytes_checked: int = 0  # versions whose bytes were looked for on the DVC remote
    findings: list[Finding] = Field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed and f.severity != "info"]
