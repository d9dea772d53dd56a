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
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitreg import manifest as mf
from gitreg import policy as load_policy
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
from gitreg.serve.cache import BundleCache
from gitreg.serve.config import AgentConfig
from gitreg.serve.metrics import Metrics
from gitreg.serve.slots import ModelSlot, Served

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
        from gitreg import sandbox as validate
        from gitreg.metadata import parse_metadata
        from gitreg.store import policy_file

        info = reg.get(version)
        if info.model != model:
            raise Rejected(f"{version} is a version of {info.model}, not {model}")
        policy = self._policy
        rules = load_policy.effective(
            policy, require_signed=self.config.require_signed, architectures=self.config.allow_architectures
        )
        allowed = rules.architectures
        total = sum(f.size for f in info.files)
        refused = load_policy.size_refusal(rules, total) or load_policy.signature_refusal(
            rules, lambda: reg.git.verify_tag(version)
        )
        if refused is not None:
            by = "the policy requires" if policy.require_signed else "--require-signed requires"
            raise Rejected(_refusal_text(refused, "the bundle", by))
        name = policy_file(f.path for f in info.files)
        if name is None:
            raise Rejected("the bundle has no policy.pt or policy.safetensors")
        _check_commit(reg, info)  # what `gitreg pull` checks, before the cache is trusted: every time
        target = self.cache.folder_for(info.files)
        if not self.cache.holds(target, info.files):  # the cache is disk: re-verified each time
            self._make_room(total)
            try:
                self.cache.fill(target, lambda dest: reg.pull(version, dest))
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                raise CacheFull(
                    f"no space left on the disk of {self.cache.root} for {version} ({total} bytes)",
                    "free disk space there or set --cache-max-bytes below what the disk holds",
                ) from None
        self.cache.touch(target)
        self._bundle_of[(model, version)] = target
        meta = parse_metadata((target / "metadata.json").read_bytes())
        policy_path = target / name
        kind = validate.policy_format(policy_path)  # from the zip directory: nothing is unpickled
        fmt: load_policy.BundleFormat = "torchscript" if kind == "torchscript" else "state_dict"
        refused = load_policy.format_refusal(rules, fmt, info.framework, meta.architecture)
        if refused is not None:
            raise Rejected(_refusal_text(refused, name, ""))
        # one observation's shape: the metadata's, else the validation record's (learned by
        # `gitreg validate` from the model and recorded for these very files), else a probe here
        input_shape = meta.input_shape or _validated_shape(info)
        if self.config.smoke_test:  # the same verified bytes, in a sandboxed child first
            report = validate.check_policy(
                policy_path, input_shape,
                timeout_s=self.config.load_timeout, memory_mb=self.config.load_memory_mb,
                allow_torchscript=policy.allow_torchscript, architecture=meta.architecture,
                architecture_kwargs=meta.architecture_kwargs, architectures=allowed,
            )  # fmt: skip
            if not report.ok:
                raise Rejected(f"sandboxed load failed: {report.detail}")
            if report.kind != kind:
                raise Rejected(f"the sandboxed load read {name} as {report.kind}, not {kind}")
            input_shape = input_shape or report.input_shape  # the child probed as validate does
        t0 = time.perf_counter()
        if self._loader is not None:
            loaded = self._loader(policy_path, meta)
        else:
            from gitreg.serve.runtime import StateDictPolicy, TorchPolicy

            try:
                if kind == "torchscript":
                    loaded = TorchPolicy(policy_path, input_shape, self.config.threads)
                else:
                    loaded = StateDictPolicy(
                        policy_path, str(meta.architecture), meta.architecture_kwargs,
                        input_shape, allowed, self.config.threads,
                    )  # fmt: skip
                input_shape = loaded.learn_input_shape()  # the known shape, else the model's own
                loaded.warm_up()
            except Exception as e:
                raise Rejected(f"load or warm-up failed: {_line(e)}") from None
        return Served(
            model=model,
            version=version,
            commit=info.commit,
            predict=loaded.predict,
            metadata=json.loads((target / "metadata.json").read_bytes()),
            input_shape=input_shape,
            platform="pytorch_torchscript" if kind == "torchscript" else "pytorch",
            load_seconds=time.perf_counter() - t0,
        )


def _validated_shape(info: Any) -> list[int] | None:
    """The input shape a passed validation record holds, if that record was made for exactly
    these files (a note left from other bytes says nothing about them). Warm-up runs a forward
    pass on it before the version serves, so a wrong shape is a rejected load, not a 422 flood."""
    rec = info.validation
    if rec is None or not rec.passed or not rec.input_shape:
        return None
    same = {(f.path, f.md5) for f in rec.files} == {(f.path, f.md5) for f in info.files}
    return list(rec.input_shape) if same else None


def _check_commit(reg: Any, info: Any) -> None:
    """The tag's commit holds the model's folder, and its files agree with the tag's record:
    every pointer parses and names its own file, every recorded file is in the commit (as a
    pointer or as plain bytes) with the recorded md5, and no recorded path leaves the bundle.
    A warm agent (bundle cached) and a cold one (pulling) refuse the same versions."""
    from pathlib import PurePosixPath

    from gitreg.store import POINTER_SUFFIX, parse_pointer

    for f in info.files:
        parts = PurePosixPath(f.path).parts
        if not parts or PurePosixPath(f.path).is_absolute() or ".." in parts or "\\" in f.path:
            raise Rejected(f"the tag records a file outside the bundle: {f.path!r}")
    raw_manifest = reg.git.read_file(info.commit, mf.MANIFEST_FILE)
    model_path = f"models/{info.model}"
    if raw_manifest is not None:
        try:
            entry = mf.loads_bytes(raw_manifest).model.models.get(info.model)
        except GitregError:
            entry = None
        if entry is not None:
            model_path = entry.path
    entries = [e for e in reg.git.list_tree(info.commit, model_path) if e.type == "blob"]
    if not entries:
        raise Rejected(f"the tag's commit {info.commit[:12]} has no {model_path}/")
    prefix = model_path.rstrip("/") + "/"
    raw = reg.git.read_objects(e.sha for e in entries)
    found: dict[str, str] = {}  # file -> md5, from the commit
    for e in entries:
        rel = e.path[len(prefix) :] if e.path.startswith(prefix) else e.path
        if rel.endswith(POINTER_SUFFIX):
            try:
                ptr = parse_pointer(raw[e.sha], e.path)
            except (GitregError, KeyError) as err:
                raise Rejected(f"{e.path} does not parse as a pointer: {_line(err)}") from None
            file_rel = rel[: -len(POINTER_SUFFIX)]
            if PurePosixPath(file_rel).name != ptr.path:
                raise Rejected(f"{e.path} points at {ptr.path!r}, not its own file")
            found[file_rel] = ptr.md5
        elif e.sha in raw:
            found.setdefault(rel, hashlib.md5(raw[e.sha], usedforsecurity=False).hexdigest())
    for f in info.files:
        if found.get(f.path) != f.md5:
            why = (
                "is not in it" if f.path not in found else f"has md5 {found[f.path]}, the tag records {f.md5}"
            )
            raise Rejected(f"{f.path} in the tag's commit {info.commit[:12]} {why}")


def _transient(e: BaseException) -> str:
    """What /health says of a failure that is retried on every sync, in words that fit it."""
    if isinstance(e, StorageError) and "neither the DVC cache nor the remote" in e.message:
        # the remote is away as often as the bytes are gone: say both, advise nothing rash
        return (
            f"{_line(GitregError(e.message))}: retried on every sync (the DVC remote may be unreachable; "
            "if it is up, the bytes were deleted, as `dvc gc -w -c` does, or never uploaded: "
            "`dvc push` them from a clone that has them)"
        )
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return f"no space left on the disk ({e.filename or 'the serve cache'}); retried on every sync"
    return _line(e)


def _line(e: BaseException) -> str:
    """One line for /health and logs; URLs lose their credentials (git echoes them)."""
    import re

    text = str(e).strip() or type(e).__name__
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text.splitlines()[0][:300])


def _refusal_text(refused: load_policy.Refusal, subject: str, by: str) -> str:
    """The agent's words for a load-policy refusal (`/health`'s rejected and last_error)."""
    if refused.rule == "signature":
        return f"the tag's signature does not verify ({refused.reason}); {by} signed tags"
    if refused.rule == "no-architecture":
        return f"{subject} is a state dict: metadata.json names no architecture to load it into"
    if refused.rule == "architecture":
        return (
            f"architecture {refused.architecture!r} is not allow-listed "
            "(models.yaml policy.architectures, or gitreg serve --allow-architecture)"
        )
    return f"{subject} {refused.message}"
