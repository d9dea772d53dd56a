"""Prometheus metrics of one serving process (its own registry: tests may run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gitreg_requests", "Prediction requests", ["model", "version", "outcome"], registry=r
        )
        self.latency = Histogram(
            "gitreg_request_latency_seconds", "Prediction latency", ["model", "version"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.swaps = Counter("gitreg_swaps", "Versions swapped in", ["model", "role"], registry=r)
        self.fallbacks = Counter(
            "gitreg_fallbacks", "Automatic fallbacks to the previous version", ["model", "role"], registry=r
        )
        self.syncs = Counter(
            "gitreg_syncs", "Fetches of the Git remote, by what triggered them", ["trigger"], registry=r
        )
        self.sync_failures = Counter(
            "gitreg_sync_failures", "Failed syncs with the Git/DVC remotes", registry=r
        )
        self.load_failures = Counter(
            "gitreg_load_failures", "Versions that failed to pull, verify or load", ["model"], registry=r
        )
        self.served = Gauge(
            "gitreg_served_version_info",
            "1 for each version being served",
            ["model", "version", "role"],
            registry=r,
        )
        self._served_labels: dict[str, set[tuple[str, str, str]]] = {}
        self.last_sync = Gauge("gitreg_last_sync_timestamp_seconds", "Last successful sync", registry=r)

    def set_served(self, model: str, roles: dict[str, str | None]) -> None:
        """Make the info metric say exactly which versions of ``model`` are served, in which role."""
        current = {(model, v, role) for role, v in roles.items() if v}
        for labels in self._served_labels.get(model, set()) - current:
            self.served.remove(*labels)
        for labels in current:
            self.served.labels(*labels).set(1)
        self._served_labels[model] = current
