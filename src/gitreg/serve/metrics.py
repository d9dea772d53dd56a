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
        self.wanted = Gauge(
            "gitreg_wanted_version_info",
            "1 for each version models.yaml wants served (production, canary)",
            ["model", "version", "role"],
            registry=r,
        )
        self.rejected = Gauge(
            "gitreg_rejected_version_info",
            "1 for each version refused before serving (verification, load policy or load failed), "
            "until models.yaml changes the model's entry",
            ["model", "version"],
            registry=r,
        )
        self._info_labels: dict[tuple[Gauge, str], set[tuple[str, ...]]] = {}  # (metric, model) -> labels
        self.last_sync = Gauge("gitreg_last_sync_timestamp_seconds", "Last successful sync", registry=r)

    def set_served(self, model: str, roles: dict[str, str | None]) -> None:
        """Make the info metric say exactly which versions of ``model`` are served, in which role."""
        self._set_info(self.served, model, {(model, v, role) for role, v in roles.items() if v})

    def set_wanted(self, model: str, roles: dict[str, str | None]) -> None:
        """Make the info metric say exactly which versions of ``model`` models.yaml wants served."""
        self._set_info(self.wanted, model, {(model, v, role) for role, v in roles.items() if v})

    def set_rejected(self, model: str, versions: set[str]) -> None:
        """Make the info metric say exactly which versions of ``model`` are refused."""
        self._set_info(self.rejected, model, {(model, v) for v in versions})

    def _set_info(self, gauge: Gauge, model: str, current: set[tuple[str, ...]]) -> None:
        key = (gauge, model)
        for labels in self._info_labels.get(key, set()) - current:
            gauge.remove(*labels)
        for labels in current:
            gauge.labels(*labels).set(1)
        self._info_labels[key] = current
