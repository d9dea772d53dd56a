"""An injectable clock for registries under test (version names come from it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC)


class FixedClock:
    """Returns ``now`` and moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)
