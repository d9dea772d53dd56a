"""The result types the views render, imported in this one place.

The core modules are being reorganized: when a type moves, only this file changes. Views import
these names under ``TYPE_CHECKING`` only, so that a command pays for the modules it uses.
"""

from __future__ import annotations

from gitreg.doctor import DoctorReport
from gitreg.lifecycle import ChangeResult, CheckReport, ModelStatus, StageChange
from gitreg.metadata import CheckResult, ValidationRecord
from gitreg.registry import Comparison, InitResult, PullResult, RegisterResult, Resolution, VersionInfo
from gitreg.report import LineageNode, Report
from gitreg.retention import CleanupResult
from gitreg.serve.health import HealthReport as Health

__all__ = [
    "ChangeResult",
    "CheckReport",
    "CheckResult",
    "CleanupResult",
    "Comparison",
    "DoctorReport",
    "Health",
    "InitResult",
    "LineageNode",
    "ModelStatus",
    "PullResult",
    "RegisterResult",
    "Report",
    "Resolution",
    "StageChange",
    "ValidationRecord",
    "VersionInfo",
]
