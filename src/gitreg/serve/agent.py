"""The deploy agent: follow models.yaml on a branch of a Git remote and keep the slots in step.

One background thread: clone (once) and fetch a bare mirror, read models.yaml at the branch
tip, and for each followed model pull the wanted production/canary bundle from the DVC remote
that commit names into a content-addressed cache (md5 verified), smoke-load it in a sandboxed
child, load and warm it up in this process, and only then swap it in. At most one load at a
time. Failures keep the served versions serving: a broken version is rejected until the
manifest changes; a remote that is away is retried with backoff. The agent never pushes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitreg import manifest as mf
from gitreg.errors import DigestMismatch, GitregError, MetadataError, VersionNotFound
from gitreg.gitrepo import GitRepo
from gitreg.serve.metrics import Metrics
from gitreg.serve.slots import ModelSlot, Served, Thresholds

log = logging.getLogger("gitreg.serve")


class Rejected(GitregError):
    """A version that will not load as it is (bad bytes, metadata, model): not retried until
    the manifest changes."""


@dataclass
class AgentConfig:
    repo: str
    cache: Path
    branch: str = "main"
    models: list[str] = field(default_factory=list)  # empty: every model with a production stage
    poll: float = 30.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    seed: int | None = None
    threads: int | None = None
    smoke_test: bool = True
    load_timeout: float = 120.0
    load_memory_mb: int = 8192
    max_backoff: float = 300.0


@dataclass
class SyncState:
    last_sync: float | None = None  # the last successful sync
    last_attempt: float | None = None
    last_error: str | None = None
    failures: int = 0  # consecutive
    commit: str | None = None
    manifest_blob: str | None = None
    syncs: int = 0


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        metrics: Metrics | None = None,
        loader: Callable[[Path, Any], Any] | None = None,
    ) -> None:
        import random

        self.config = config
        self.metrics = metrics or Metrics()
        self.state = SyncState()
        self.slots: dict[str, ModelSlot] = {}
        self._rng = random.Random(config.seed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loader = loader
        for name in config.models:
            self._slot(name)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="gitreg-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Sync now (a webhook said the remote changed)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
                delay = self.config.poll
            except Exception as e:  # any failure: keep serving, say so, retry with backoff
                delay = min(self.config.max_backoff, self.config.poll, 2.0 ** min(self.state.failures, 8))
                log.warning("sync failed (%s); retrying in %.0f s", e, delay)
            self._wake.wait(delay)
            self._wake.clear()

    def _slot(self, name: str) -> ModelSlot:
        slot = self.slots.get(name)
        if slot is None:
            slot = self.slots[name] = ModelSlot(name, self.config.thresholds, self._rng)
        return slot

    # -- one sync ------------------------------------------------------------------------------
    def sync_once(self) -> None:
        with self._sync_lock:
            self.state.last_attempt = time.time()
            try:
                self._sync()
            except Exception as e:
                self.state.failures += 1
                self.state.last_error = _line(e)
                self.metrics.sync_failures.inc()
                raise
            self.state.failures = 0
            self.state.last_error = None
            self.state.last_sync = time.time()
            self.state.syncs += 1
            self.metrics.last_sync.set(self.state.last_sync)

    def _sync(self) -> None:
        from gitreg.registry import Registry

        mirror_path = self.config.cache / "repo.git"
        if (mirror_path / "HEAD").exists():
            GitRepo(mirror_path).fetch_mirror()
        else:
            GitRepo.mirror(self.config.repo, mirror_path)
        reg = Registry(mirror_path)
        head = reg.git.rev_parse(f"refs/heads/{self.config.branch}")
        if head is None:
            raise GitregError(
                f"the remote has no branch {self.config.branch!r}",
                "pass --branch with the branch models.yaml is on",
            )
        raw = reg.git.read_file(head, mf.MANIFEST_FILE)
        if raw is None:
            raise GitregError(
                f"{self.config.branch} has no models.yaml", "run `gitreg init` in the registry repo"
            )
        blob = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        manifest = mf.loads(raw.decode(errors="replace"))
        if blob != self.state.manifest_blob:
            for slot in self.slots.values():
                slot.manifest_changed()
        self.state.commit = head
        self.state.manifest_blob = blob
        followed = self.config.models or [
            name for name, entry in manifest.model.models.items() if entry.stages.get("production")
        ]
        transient: list[str] = []
        for name in followed:
            slot = self._slot(name)
            entry = manifest.model.models.get(name)
            slot.wanted_production = entry.stages.get("production") if entry else None
            slot.wanted_canary = entry.canary.version if entry and entry.canary else None
            if entry is None:
                slot.last_error = f"models.yaml on {self.config.branch} has no model {name!r}"
                continue
            try:
                self._converge(reg, slot, entry)
                slot.last_error = None
            except Rejected as e:
                slot.last_error = e.message
                self.metrics.load_failures.labels(model=name).inc()
            except Exception as e:
                slot.last_error = _line(e)
                self.metrics.load_failures.labels(model=name).inc()
                transient.append(f"{name}: {_line(e)}")
            self._publish(slot)
        if transient:
            raise GitregError("; ".join(transient))

    def _converge(self, reg: Any, slot: ModelSlot, entry: mf.ModelEntry) -> None:
        want = slot.wanted_production
        if (
            want
            and want not in slot.rejected
            and (slot.production is None or slot.production.version != want)
        ):
            if slot.previous is not None and slot.previous.version == want:
                served = slot.previous  # instant rollback: it is still loaded
            else:
                served = self._load_or_reject(reg, slot, want)
            slot.swap_production(served)
            self.metrics.swaps.labels(model=slot.name, role="production").inc()
            log.info("%s: serving %s", slot.name, want)
        canary = entry.canary
        current = slot.canary.version if slot.canary else None
        if canary is None:
            if current is not None:
                slot.set_canary(None, 0.0)
        elif canary.version != current:
            if canary.version not in slot.rejected:
                served = self._load_or_reject(reg, slot, canary.version)
                slot.set_canary(served, canary.traffic)
                self.metrics.swaps.labels(model=slot.name, role="canary").inc()
        elif canary.traffic != slot.canary_traffic:
            slot.set_traffic(canary.traffic)

    def _load_or_reject(self, reg: Any, slot: ModelSlot, version: str) -> Served:
        try:
            return self._load(reg, slot.name, version)
        except (Rejected, DigestMismatch, MetadataError, VersionNotFound) as e:
            reason = e.message if isinstance(e, GitregError) else str(e)
            slot.rejected[version] = reason
            raise Rejected(
                f"{version} is not served: {reason}", "fix the bundle and change models.yaml"
            ) from None

    def _publish(self, slot: ModelSlot) -> None:
        self.metrics.set_served(
            slot.name,
            {
                "production": slot.production.version if slot.production else None,
                "canary": slot.canary.version if slot.canary else None,
                "previous": slot.previous.version if slot.previous else None,
            },
        )

    # -- loading one version -------------------------------------------------------------------
    def bundle_dir(self, files: list[Any]) -> Path:
        """Content-addressed: the same bytes share one folder, whatever the version name."""
        key = hashlib.sha256("\n".join(sorted(f"{f.path}:{f.md5}" for f in files)).encode()).hexdigest()[:32]
        return self.config.cache / "bundles" / key

    def _load(self, reg: Any, model: str, version: str) -> Served:
        from gitreg import validate
        from gitreg.bundles import POLICY_FILE, md5_file
        from gitreg.metadata import parse_metadata

        info = reg.get(version)
        if info.model != model:
            raise Rejected(f"{version} is a version of {info.model}, not {model}")
        target = self.bundle_dir(info.files)
        if target.exists():
            for f in info.files:  # the cache is disk: re-verify before trusting it
                path = target / f.path
                if not path.is_file() or md5_file(path)[0] != f.md5:
                    shutil.rmtree(target)
                    break
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as tmp:
                reg.pull(version, Path(tmp) / "bundle")
                (Path(tmp) / "bundle").rename(target)
        meta = parse_metadata((target / "metadata.json").read_bytes())
        policy_path = target / POLICY_FILE
        if self.config.smoke_test:
            report = validate.check_policy(
                policy_path, meta.input_shape,
                timeout_s=self.config.load_timeout, memory_mb=self.config.load_memory_mb,
            )  # fmt: skip
            if not report.ok:
                raise Rejected(f"sandboxed load failed: {report.detail}")
            if report.kind != "torchscript":
                raise Rejected("only TorchScript bundles can be served (a state dict needs an architecture)")
        t0 = time.perf_counter()
        if self._loader is not None:
            policy = self._loader(policy_path, meta)
        else:
            from gitreg.serve.runtime import TorchPolicy

            try:
                policy = TorchPolicy(policy_path, meta.input_shape, self.config.threads)
                policy.warm_up()
            except Exception as e:
                raise Rejected(f"load or warm-up failed: {_line(e)}") from None
        return Served(
            model=model,
            version=version,
            commit=info.commit,
            predict=policy.predict,
            metadata=json.loads((target / "metadata.json").read_bytes()),
            input_shape=meta.input_shape,
            load_seconds=time.perf_counter() - t0,
        )


def _line(e: BaseException) -> str:
    """One line for /health and logs; URLs lose their credentials (git echoes them)."""
    import re

    text = str(e).strip() or type(e).__name__
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text.splitlines()[0][:300])
