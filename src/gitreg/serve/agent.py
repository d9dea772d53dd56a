"""The deploy agent: follow models.yaml on a branch of a Git remote and keep the slots in step.

One background thread: clone (once) and fetch a bare mirror, read models.yaml at the branch
tip, and for each followed model pull the wanted production/canary bundle from the DVC remote
that commit names into a content-addressed cache (md5 verified), smoke-load it in a sandboxed
child, load and warm it up in this process, and only then swap it in. At most one load at a
time. Failures keep the served versions serving: a broken version is rejected until the
manifest changes; a remote that is away is retried with backoff. The agent never pushes.

models.yaml's ``policy:`` on the followed branch is enforced before anything is loaded: the
bundle's size (max_bundle_bytes), the tag's signature (require_signed), TorchScript or not
(allow_torchscript), and a state dict's architecture (policy.architectures plus
``--allow-architecture``). A version that breaks it is rejected, never served.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitreg import manifest as mf
from gitreg.errors import (
    CacheFull,
    DigestMismatch,
    GitregError,
    MetadataError,
    Rejected,
    StorageError,
    VersionNotFound,
)
from gitreg.gitrepo import GitRepo
from gitreg.gitrepo.credentials import split_url
from gitreg.loading import one_line
from gitreg.serve.config import AgentConfig
from gitreg.serve.metrics import Metrics
from gitreg.serve.slots import ModelSlot, Served
from gitreg.store.cache import BundleCache

log = logging.getLogger("gitreg.serve")


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
        self._hook_pending = False
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        self._seen_entries: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._loader = loader
        self._bundle_of: dict[tuple[str, str], Path] = {}  # (model, version) -> its cached folder
        self._refused: dict[str, set[str]] = {}  # model -> versions refused at load (not fallbacks)
        self._policy = mf.LoadPolicy()  # models.yaml's `policy:` on the followed branch
        self.cache = BundleCache(config.cache / "bundles")
        # the token reaches git through a credential helper in git's environment: never argv,
        # never the mirror's config (a password inside --repo is taken out of the URL)
        self._repo_url, self._auth = split_url(config.repo, config.git_token_env)
        for name in config.models:
            self._slot(name)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.cache.clean_stale()
        if self._auth is not None and self._auth.password is not None:
            log.warning(
                "the --repo URL has a password in it: git gets it through a credential helper and "
                "no file keeps it, but it shows in this process's command line; use --git-token-env",
                extra={"event": "password_in_url"},
            )
        self._thread = threading.Thread(target=self._loop, name="gitreg-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self, hook: bool = False) -> None:
        """Sync now; ``hook``: a webhook said the remote changed (such syncs are rate-limited)."""
        if hook:
            self._hook_pending = True
        self._wake.set()

    def slot(self, name: str) -> ModelSlot | None:
        """The slot of a followed model, or None."""
        return self.slots.get(name)

    def default_model(self) -> str | None:
        """The model ``/predict`` answers for: the only (or first) followed one."""
        return next(iter(self.slots), None)

    def waiting(self) -> list[str]:
        """Followed models with nothing loaded yet."""
        return [n for n, s in self.slots.items() if s.production is None and s.canary is None]

    def publish(self, slot: ModelSlot) -> None:
        """Make the version metrics say what ``slot`` serves (after a swap or a fallback), what
        models.yaml wants it to serve, and which versions it refused to load."""
        self.metrics.set_wanted(
            slot.name, {"production": slot.wanted_production, "canary": slot.wanted_canary}
        )
        self.metrics.set_rejected(slot.name, set(self._refused.get(slot.name, ())) & set(slot.rejected))
        self.metrics.set_served(
            slot.name,
            {
                "production": slot.production.version if slot.production else None,
                "canary": slot.canary.version if slot.canary else None,
                "previous": slot.previous.version if slot.previous else None,
            },
        )

    _publish = publish

    def _loop(self) -> None:
        trigger = "start"
        last_hook_sync = -float("inf")
        while not self._stop.is_set():
            try:
                self.sync_once(trigger)
                delay = self.config.poll
            except Exception as e:  # any failure: keep serving, say so, retry with backoff
                delay = min(self.config.max_backoff, self.config.poll, 2.0 ** min(self.state.failures, 8))
                log.warning("sync failed (%s); retrying in %.0f s", e, delay, extra={"event": "sync_failed"})
            woke = self._wake.wait(delay)
            if woke and self._hook_pending:
                # at most one hook-triggered sync per hook_interval: deliveries meanwhile join it
                rest = last_hook_sync + self.config.hook_interval - time.monotonic()
                if rest > 0:
                    self._stop.wait(rest)
            self._wake.clear()
            trigger = "hook" if self._hook_pending else "wake" if woke else "poll"
            self._hook_pending = False
            if trigger == "hook":
                last_hook_sync = time.monotonic()

    def _slot(self, name: str) -> ModelSlot:
        slot = self.slots.get(name)
        if slot is None:
            slot = ModelSlot(name, self.config.thresholds, self._rng)
            for role in ("production", "canary"):  # at 0 from the start: a first fallback is an increase
                self.metrics.fallbacks.labels(model=name, role=role)
            # copy on write: the app iterates the dict it read while the agent changes the set
            self.slots = {**self.slots, name: slot}
        return slot

    def _unfollow(self, names: set[str]) -> None:
        """Models gone from models.yaml: unloaded (their versions are freed once the requests
        holding them finish), gone from /ready, /health and the served-version metric, and
        their bundles no longer kept from eviction."""
        if not names:
            return
        self.slots = {n: s for n, s in self.slots.items() if n not in names}
        for name in names:
            self._seen_entries.pop(name, None)
            self.metrics.set_served(name, {})
            self.metrics.set_wanted(name, {})
            self.metrics.set_rejected(name, set())
            self._refused.pop(name, None)
            log.info(
                "%s: no longer in models.yaml on %s: unloaded", name, self.config.branch,
                extra={"event": "unloaded", "model": name},
            )  # fmt: skip
        self._bundle_of = {k: v for k, v in self._bundle_of.items() if k[0] not in names}

    # -- one sync ------------------------------------------------------------------------------
    def sync_once(self, trigger: str = "call") -> None:
        """Fetch the remote and converge; ``trigger`` (start, poll, hook, wake, call) is counted."""
        with self._sync_lock:
            self.state.last_attempt = time.time()
            self.metrics.syncs.labels(trigger=trigger).inc()
            try:
                self._sync()
            except Exception as e:
                self.state.failures += 1
                self.state.last_error = one_line(e)
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
            GitRepo(mirror_path).fetch_mirror(auth=self._auth)
        else:
            GitRepo.mirror(self._repo_url, mirror_path, auth=self._auth)
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
        manifest = mf.loads_bytes(raw)  # the loader `gitreg check` uses: strict UTF-8, limits first
        self._policy = manifest.model.policy
        if blob != self.state.manifest_blob:
            # A version rejected (or fallen back from) is tried again only when its model's
            # entry changes (or the load policy does): not on an unrelated edit.
            policy = (
                manifest.model.policy.model_dump() if hasattr(manifest.model.policy, "model_dump") else {}
            )
            for name, slot in self.slots.items():
                entry = manifest.model.models.get(name)
                seen = (entry.model_dump() if entry else None, policy)
                if self._seen_entries.get(name, seen) != seen:
                    slot.manifest_changed()
                    self._refused.pop(name, None)
                self._seen_entries[name] = seen
        self.state.commit = head
        self.state.manifest_blob = blob
        stage = self.config.stage
        followed = self.config.models or [
            name for name, entry in manifest.model.models.items() if entry.stages.get(stage)
        ]
        if not self.config.models:  # following what models.yaml names: it may name fewer now
            self._unfollow(set(self.slots) - set(followed))
        transient: list[str] = []
        for name in followed:
            slot = self._slot(name)
            entry = manifest.model.models.get(name)
            if entry is not None and stage != "production" and entry.canary is not None:
                entry = entry.model_copy(update={"canary": None})  # a canary splits production only
            # the "production" slot role is the version served: the followed stage's
            slot.wanted_production = entry.stages.get(stage) if entry else None
            slot.wanted_canary = entry.canary.version if entry and entry.canary else None
            if entry is None:
                slot.last_error = f"models.yaml on {self.config.branch} has no model {name!r}"
                self.publish(slot)
                continue
            try:
                self._converge(reg, slot, entry)
                # a wanted version rejected earlier (or fallen back from) is still not served: say so
                slot.last_error = next(
                    (
                        f"{v} is not served: {slot.rejected[v]}"
                        for v in (slot.wanted_production, slot.wanted_canary)
                        if v and v in slot.rejected
                    ),
                    None,
                )
            except Rejected as e:
                slot.last_error = e.message
                self.metrics.load_failures.labels(model=name).inc()
                log.warning("%s: %s", name, e.message, extra={"event": "rejected", "model": name})
            except Exception as e:
                slot.last_error = _transient(e)
                self.metrics.load_failures.labels(model=name).inc()
                transient.append(f"{name}: {slot.last_error}")
                log.warning("%s: %s", name, slot.last_error, extra={"event": "load_failed", "model": name})
            self.publish(slot)
        if transient:
            raise GitregError("; ".join(transient))

    def _converge(self, reg: Any, slot: ModelSlot, entry: mf.ModelEntry) -> None:
        if entry.canary is None and slot.canary is not None:
            slot.set_canary(None, 0.0)  # first: a dropped canary frees cache room for a new production
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
            log.info(
                "%s: serving %s",
                slot.name,
                want,
                extra={"event": "serving", "model": slot.name, "version": want},
            )
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
            self._refused.setdefault(slot.name, set()).add(version)
            raise Rejected(
                f"{version} is not served: {reason}", "fix the bundle and change models.yaml"
            ) from None
        except StorageError as e:  # retried on every sync; /health names the version it is for
            raise StorageError(f"{version}: {e.message}", e.hint) from None

    # -- loading one version -------------------------------------------------------------------
    def bundle_dir(self, files: list[Any]) -> Path:
        """Content-addressed: the same bytes share one folder, whatever the version name."""
        return self.cache.folder_for(files)

    def _make_room(self, needed: int) -> None:
        """Keep bundles/ under --cache-max-bytes: evict the least recently used bundles that no
        slot serves (production, canary, previous); refuse the pull if that is not enough."""
        limit = self.config.cache_max_bytes
        if limit is None:
            return
        if needed > limit:
            raise Rejected(
                f"the bundle is {needed} bytes, more than --cache-max-bytes {limit}",
                "raise --cache-max-bytes or promote a smaller bundle",
            )
        in_use = {  # the previous version needs no disk: it stays loaded in memory
            self._bundle_of.get((slot.name, s.version))
            for slot in self.slots.values()
            for s in (slot.production, slot.canary)
            if s is not None
        }
        used = self.cache.evict_for(needed, limit, {p for p in in_use if p is not None})
        if used + needed > limit:
            raise CacheFull(
                f"the cache cannot take {needed} more bytes: {used} of --cache-max-bytes {limit} "
                "hold bundles being served",
                "raise --cache-max-bytes; the served versions keep serving",
            )

    def _load(self, reg: Any, model: str, version: str) -> Served:
        from gitreg.loading import LoadOptions, load

        c = self.config
        options = LoadOptions(
            require_signed=c.require_signed, allow_architectures=c.allow_architectures,
            smoke_test=c.smoke_test, timeout_s=c.load_timeout, memory_mb=c.load_memory_mb,
            threads=c.threads,
        )  # fmt: skip
        room, runner = self._make_room, self._loader
        loaded = load(
            reg.ctx, version, self.cache, self._policy, options, model=model, make_room=room, runner=runner
        )
        self._bundle_of[(model, version)] = loaded.folder
        return Served(
            model=model,
            version=version,
            commit=loaded.info.commit,
            predict=loaded.runner.predict,
            metadata=loaded.metadata,
            input_shape=loaded.input_shape,
            platform=loaded.platform,
            load_seconds=loaded.load_seconds,
        )


def _transient(e: BaseException) -> str:
    """What /health says of a failure that is retried on every sync, in words that fit it."""
    if isinstance(e, StorageError) and "neither the DVC cache nor the remote" in e.message:
        # the remote is away as often as the bytes are gone: say both, advise nothing rash
        return (
            f"{one_line(GitregError(e.message))}: retried on every sync (the DVC remote may be unreachable; "
            "if it is up, the bytes were deleted, as `dvc gc -w -c` does, or never uploaded: "
            "`dvc push` them from a clone that has them)"
        )
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return f"no space left on the disk ({e.filename or 'the serve cache'}); retried on every sync"
    return one_line(e)
