"""What is served: one slot per model with its production, previous and canary versions.

Swapping is a reference assignment under a lock: a request takes a reference to the version it
was routed to and finishes on it even if a swap happens meanwhile; the replaced version is freed
when the last such request drops its reference (no request ever sees a half-loaded model).
Each version's outcomes feed a sliding window; a newly swapped-in version that breaches the
thresholds is replaced by the previous one locally and not taken again until the manifest
changes. No torch here.
"""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitreg.serve.config import Thresholds

__all__ = ["Fallback", "ModelSlot", "NotServing", "Served", "Thresholds", "VersionStats"]


class NotServing(Exception):
    """The model has nothing to serve yet (HTTP 503)."""


@dataclass
class Served:
    """A loaded, verified, warmed-up version, ready for requests."""

    model: str
    version: str
    commit: str
    predict: Callable[[Any], list[Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    input_shape: list[int] | None = None
    platform: str = "pytorch_torchscript"  # or "pytorch" (a state dict in its architecture)
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    # running estimate of one forward pass per observation (None until the first request)
    predict_seconds: float | None = None


class VersionStats:
    """Sliding window of (ok, latency) for one version.

    The window's latencies are also kept sorted (per request: one bisect insert and one delete,
    O(log n) compares and a short memmove) and its errors counted as they come and go, so a
    snapshot is O(1), not a sort of the window: a version on probation is judged on every request."""

    def __init__(self, window: int) -> None:
        self._window = max(0, window)
        self._items: deque[tuple[bool, float]] = deque()
        self._sorted: list[float] = []  # the window's latencies, ascending
        self._window_errors = 0
        self._lock = threading.Lock()
        self.total = 0
        self.errors = 0

    def record(self, ok: bool, latency_s: float) -> None:
        with self._lock:
            self.total += 1
            if not ok:
                self.errors += 1
            if not self._window:
                return
            items = self._items
            if len(items) == self._window:
                old_ok, old_latency = items.popleft()
                del self._sorted[bisect_left(self._sorted, old_latency)]
                if not old_ok:
                    self._window_errors -= 1
            items.append((ok, latency_s))
            insort(self._sorted, latency_s)
            if not ok:
                self._window_errors += 1

    def snapshot(self) -> tuple[int, float, float]:
        """(requests in the window, error rate, p99 latency in ms)."""
        with self._lock:
            n = len(self._sorted)
            if not n:
                return 0, 0.0, 0.0
            p99 = self._sorted[min(n - 1, int(n * 0.99))]
            return n, self._window_errors / n, p99 * 1000


@dataclass
class Fallback:
    version: str
    role: str  # production | canary
    reason: str
    at: float = field(default_factory=time.time)
    restored: str | None = None


class ModelSlot:
    """One followed model."""

    def __init__(self, name: str, thresholds: Thresholds, rng: random.Random) -> None:
        self.name = name
        self.thresholds = thresholds
        self._rng = rng
        self._lock = threading.Lock()
        self.production: Served | None = None
        self.previous: Served | None = None
        self.canary: Served | None = None
        self.canary_traffic = 0.0
        self.wanted_production: str | None = None
        self.wanted_canary: str | None = None
        self.rejected: dict[str, str] = {}  # version -> why it is not taken (until the manifest changes)
        self.last_error: str | None = None
        self.fallbacks: list[Fallback] = []
        self.on_probation: set[str] = set()
        self.stats: dict[str, VersionStats] = {}

    # -- requests ------------------------------------------------------------------------------
    def route(self) -> Served:
        """The version that answers this request: the canary for its share, else production."""
        with self._lock:
            prod, canary, share = self.production, self.canary, self.canary_traffic
            roll = self._rng.random() * 100 if canary is not None else 100.0
        if canary is not None and (prod is None or roll < share):
            return canary
        if prod is None:
            raise NotServing(self.name)
        return prod

    def record(self, served: Served, ok: bool, latency_s: float) -> Fallback | None:
        stats = self._stats(served.version)
        stats.record(ok, latency_s)
        if served.version not in self.on_probation:
            return None
        n, err, p99 = stats.snapshot()
        t = self.thresholds
        if n < t.min_requests:
            return None
        reason = None
        if err > t.max_error_rate:
            reason = f"error rate {err:.1%} > {t.max_error_rate:.1%} over {n} requests"
        elif p99 > t.max_p99_ms:
            reason = f"p99 latency {p99:.0f} ms > {t.max_p99_ms:.0f} ms over {n} requests"
        if reason is None:
            if n >= t.window:
                self.on_probation.discard(served.version)  # it proved itself over a full window
            return None
        return self._fall_back(served, reason)

    def _stats(self, version: str) -> VersionStats:
        stats = self.stats.get(version)
        if stats is None:
            stats = self.stats.setdefault(version, VersionStats(self.thresholds.window))
        return stats

    def _fall_back(self, served: Served, reason: str) -> Fallback | None:
        with self._lock:
            if self.canary is served:
                self.canary = None
                event = Fallback(served.version, "canary", reason, restored=None)
            elif self.production is served and self.previous is not None:
                self.production, self.previous = self.previous, None
                event = Fallback(served.version, "production", reason, restored=self.production.version)
            else:
                return None  # nothing to fall back to: keep serving and report it
            self.on_probation.discard(served.version)
            self.rejected[served.version] = f"fell back: {reason}"
            self.fallbacks.append(event)
            del self.fallbacks[:-20]
            return event

    # -- the agent -----------------------------------------------------------------------------
    def swap_production(self, new: Served) -> None:
        with self._lock:
            if self.production is not None and self.production.version != new.version:
                self.previous = self.production
            self.production = new
            if self.previous is not None:
                self.on_probation.add(new.version)  # judged only when there is a fallback
            self.stats[new.version] = VersionStats(self.thresholds.window)

    def set_canary(self, new: Served | None, traffic: float) -> None:
        with self._lock:
            self.canary = new
            self.canary_traffic = traffic
            if new is not None:
                self.on_probation.add(new.version)
                self.stats[new.version] = VersionStats(self.thresholds.window)

    def set_traffic(self, traffic: float) -> None:
        with self._lock:
            self.canary_traffic = traffic

    def manifest_changed(self) -> None:
        """A new manifest: versions rejected under the old one may be tried again."""
        with self._lock:
            self.rejected.clear()

    def served_versions(self) -> list[Served]:
        with self._lock:
            return [s for s in (self.production, self.canary, self.previous) if s is not None]
