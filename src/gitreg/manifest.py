"""models.yaml: the manifest of models and the stage each version holds.

Read and written round-trip with ruamel.yaml so that comments and key order survive edits;
validated with pydantic in strict mode (no coercion: ``traffic: "50"`` or ``traffic: true`` is
refused, not read as 50 or 1). Untrusted input: size-, line- and nesting-limited by a linear
pre-scan before the YAML scanner sees it (ruamel's scanner is quadratic in nesting), strict
UTF-8, no anchors/aliases, no custom tags, paths kept inside the repository. The only I/O is
reading and atomically replacing the file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.scalarbool import ScalarBoolean

from gitreg.errors import InvalidModelName, ManifestError
from gitreg.fs import atomic_write  # the one atomic write (also imported from here by the CLI)
from gitreg.manifest_scan import MANIFEST_FILE, prescan
from gitreg.versions import check_model_name, is_architecture, is_version

MAX_MANIFEST_BYTES = 1 << 20
STAGE_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"

# Metrics where a larger number wins, and where a smaller one does; models.yaml may override.
HIGHER_IS_BETTER = (
    "accuracy",
    "acc",
    "precision",
    "recall",
    "f1",
    "auc",
    "roc_auc",
    "r2",
    "r_squared",
    "reward",
    "mean_reward",
    "episode_reward",
    "return",
    "total_return",
    "annual_return",
    "sharpe",
    "sharpe_ratio",
    "sortino",
    "profit_factor",
    "win_rate",
    "success_rate",
    "score",
    "map",
    "bleu",
    "iou",
    "direction_accuracy",
)
LOWER_IS_BETTER = (
    "loss",
    "val_loss",
    "best_val_loss",
    "rmse",
    "mse",
    "mae",
    "mape",
    "error",
    "error_rate",
    "drawdown",
    "max_drawdown",
    "volatility",
    "latency",
    "latency_ms",
    "perplexity",
    "wer",
    "cer",
)

HEADER = """\
# The gitreg manifest: which version of each model holds which stage.
# Edit through `gitreg promote` / `gitreg deploy` (they open a PR) or by hand in a PR.
# The bytes of every version live on the DVC remote; free space with `gitreg cleanup`.
# Never `dvc gc -w -c`: it keeps only the checked-out commit's bytes and deletes production's
# (`dvc gc --all-tags --all-branches -c` is safe); `gitreg doctor` finds missing bytes.
"""


def _version_name(v: str) -> str:
    if not is_version(v):
        raise ValueError(f"{v!r} is not a version name")
    return v


def _stage_name(stage: str) -> str:
    if stage == "archived":
        raise ValueError("archived is a list (archived: [...]), not a stage")
    if not re.fullmatch(STAGE_PATTERN, stage):
        raise ValueError(f"{stage!r} is not a stage name")
    return stage


def _model_name(name: str) -> str:
    try:
        return check_model_name(name)
    except InvalidModelName:
        raise ValueError(f"{name!r} is not a model name") from None


# Checked one by one (not per dict/list) so that an error's location, and so its line in
# models.yaml, is the offending entry rather than the mapping that holds it.
VersionStr = Annotated[str, AfterValidator(_version_name)]
StageName = Annotated[str, AfterValidator(_stage_name)]
ModelName = Annotated[str, AfterValidator(_model_name)]


class Canary(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: VersionStr
    traffic: float = Field(ge=0, le=100)


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    keep_last: int | None = Field(default=None, ge=0)
    max_age_days: int | None = Field(default=None, ge=0)


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    path: str
    stages: dict[StageName, VersionStr] = Field(default_factory=dict)
    canary: Canary | None = None
    archived: list[VersionStr] = Field(default_factory=list)
    retention: Retention | None = None

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str) -> str:
        p = PurePosixPath(v)
        if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in v or p.parts[0] == ".git":
            raise ValueError(f"path {v!r} must be a relative folder inside the repository")
        return str(p)


def _architecture(spec: str) -> str:
    if not is_architecture(spec):
        raise ValueError(f"{spec!r} is not an architecture like 'pkg.module:ClassName'")
    return spec


ArchitectureName = Annotated[str, AfterValidator(_architecture)]


class LoadPolicy(BaseModel):
    """``policy:`` in models.yaml: what may be loaded and served, enforced by ``gitreg check``,
    ``gitreg validate`` and the deploy agent."""

    model_config = ConfigDict(extra="forbid", strict=True)
    allow_torchscript: bool = True  # TorchScript is code: false allows state dicts only
    require_signed: bool = False  # version tags must pass `git verify-tag`
    max_bundle_bytes: int | None = Field(default=None, ge=1)  # all of a version's files together
    architectures: list[ArchitectureName] = Field(default_factory=list)  # "pkg.module:Class" allow-list
    require_staging_before_production: bool = False


class MetricDirections(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    higher_is_better: list[str] = Field(default_factory=list)
    lower_is_better: list[str] = Field(default_factory=list)


class ManifestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: int = 1
    models: dict[ModelName, ModelEntry] = Field(default_factory=dict)
    metrics: MetricDirections = Field(default_factory=MetricDirections)
    policy: LoadPolicy = Field(default_factory=LoadPolicy)

    @field_validator("version")
    @classmethod
    def _v1(cls, v: int) -> int:
        if v != 1:
            raise ValueError(f"manifest version {v} is not supported (this gitreg reads 1)")
        return v


def round_trip_yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


class Manifest:
    """A loaded models.yaml: the round-trip document plus its validated view."""

    def __init__(self, doc: Any, model: ManifestModel, path: str = MANIFEST_FILE) -> None:
        self.doc = doc
        self.model = model
        self.path = path

    # -- reading -----------------------------------------------------------------------------
    def stages_of(self, model: str, version: str) -> list[str]:
        entry = self.model.models.get(model)
        if entry is None:
            return []
        held = [stage for stage, v in entry.stages.items() if v == version]
        if entry.canary and entry.canary.version == version:
            held.append("canary")
        if version in entry.archived:
            held.append("archived")
        return held

    def line_of(self, *keys: Any) -> int | None:
        """1-based line of a key path such as ("models", "policy", "stages", "production")."""
        return _line_of(self.doc, keys)

    def directions(self) -> tuple[set[str], set[str]]:
        higher = set(HIGHER_IS_BETTER) | set(self.model.metrics.higher_is_better)
        lower = (set(LOWER_IS_BETTER) - set(self.model.metrics.higher_is_better)) | set(
            self.model.metrics.lower_is_better
        )
        return higher - set(self.model.metrics.lower_is_better), lower

    # -- editing (round trip) ----------------------------------------------------------------
    def ensure_model(self, name: str, path: str) -> bool:
        """Add a model entry if missing; True when the document changed."""
        if name in self.model.models:
            return False
        # A bad name or path must leave the document as it was: check the new entry alone first.
        _validate({"models": {name: {"path": path}}}, self.path)
        models = self.doc.get("models")
        if not isinstance(models, CommentedMap):
            models = CommentedMap()
            self.doc["models"] = models
        elif models.fa.flow_style():
            models.fa.set_block_style()  # `models: {}` from init grows as a block
        entry = CommentedMap()
        entry["path"] = path
        models[name] = entry
        self.model = _validate(self.doc, self.path)
        return True

    def _entry(self, model: str) -> CommentedMap:
        entry = (self.doc.get("models") or {}).get(model)
        if not isinstance(entry, CommentedMap):
            raise ManifestError(self.path, f"has no model {model!r}", "register a version of it first")
        return entry

    def _child_map(self, entry: CommentedMap, key: str) -> CommentedMap:
        child = entry.get(key)
        if not isinstance(child, CommentedMap):
            child = CommentedMap()
            entry[key] = child
        return child

    def set_stage(self, model: str, stage: str, version: str | None) -> str | None:
        """Point ``stage`` of ``model`` at ``version`` (None clears it); returns the previous."""
        with self._transaction():
            entry = self._entry(model)
            stages = self._child_map(entry, "stages")
            previous = stages.get(stage)
            if version is None:
                stages.pop(stage, None)
            else:
                stages[stage] = version
            self._revalidate()
            return str(previous) if previous is not None else None

    def set_canary(self, model: str, version: str | None, traffic: float | None = None) -> str | None:
        """Set (or with None clear) the model's canary; returns the previous canary version."""
        with self._transaction():
            entry = self._entry(model)
            old = entry.get("canary")
            previous = str(old.get("version")) if isinstance(old, dict) and old.get("version") else None
            share = int(traffic) if traffic is not None and traffic == int(traffic) else traffic
            if version is None:
                entry.pop("canary", None)
            elif isinstance(old, CommentedMap):
                old["version"] = version  # in place: its comments and style survive the edit
                old["traffic"] = share
            else:
                canary = CommentedMap()
                canary["version"] = version
                canary["traffic"] = share
                entry["canary"] = canary
            self._revalidate()
            return previous

    def archive(self, model: str, version: str) -> list[str]:
        """Add ``version`` to the model's archived list and take it out of every stage and the
        canary; returns the stages it lost."""
        with self._transaction():
            entry = self._entry(model)
            lost = [s for s, v in (entry.get("stages") or {}).items() if v == version]
            for stage in lost:
                entry["stages"].pop(stage)
            canary = entry.get("canary")
            if isinstance(canary, dict) and canary.get("version") == version:
                entry.pop("canary")
                lost.append("canary")
            archived = entry.get("archived")
            if not isinstance(archived, CommentedSeq):
                archived = CommentedSeq()
                archived.fa.set_flow_style()
                entry["archived"] = archived
            if version not in archived:
                archived.append(version)
            self._revalidate()
            return lost

    def unarchive(self, model: str, version: str) -> bool:
        with self._transaction():
            entry = self._entry(model)
            archived = entry.get("archived")
            if isinstance(archived, list) and version in archived:
                archived.remove(version)
                self._revalidate()
                return True
            return False

    def _revalidate(self) -> None:
        self.model = _validate(self.doc, self.path)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Edits either apply whole or leave the document as it was (an invalid value raises)."""
        saved = copy.deepcopy(self.doc)
        try:
            yield
        except BaseException:
            self.doc = saved
            self.model = _validate(self.doc, self.path)
            raise

    def dumps(self) -> str:
        buf = io.StringIO()
        round_trip_yaml().dump(self.doc, buf)
        return buf.getvalue()

    def save(self, path: Path) -> None:
        atomic_write(path, self.dumps().encode())


def _validate(doc: Any, source: str) -> ManifestModel:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ManifestError(source, "must be a mapping with `version` and `models`")
    models = doc.get("models")
    if isinstance(models, dict):
        for key in models:
            if not isinstance(key, str):  # YAML reads `1e3:` as a number: it would be renamed silently
                raise ManifestError(
                    source, f"model name {key!r} is not a string", "quote it in models.yaml",
                    line=_line_of(doc, ("models", key)),
                )  # fmt: skip
    plain = _plain(doc)
    if plain.get("models", {}) is None:
        plain["models"] = {}  # `models:` with nothing under it: no models yet
    if "policy" in plain and plain["policy"] is None:
        plain["policy"] = {}  # `policy:` with nothing under it: the defaults
    try:
        return ManifestModel.model_validate(plain)
    except ValidationError as e:
        first = e.errors()[0]
        # "[key]" means the key itself is bad; odd keys are quoted so the message stays one line.
        loc = ".".join(str(p) if str(p).isprintable() else repr(p) for p in first["loc"] if p != "[key]")
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] in _KINDS:
            msg = _type_problem(first["loc"], _KINDS[first["type"]], first.get("input"))
        elif first["type"] in ("greater_than_equal", "less_than_equal"):
            bound = first.get("ctx", {})
            msg = (
                "must be a number from 0 to 100"
                if first["loc"][-1] == "traffic"
                else f"must be at least {bound['ge']}"
                if "ge" in bound
                else f"must be at most {bound['le']}"
            ) + f", not {_shown(first.get('input'))}"
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
            if first["loc"][0] == "policy" and len(first["loc"]) == 2:  # a mistyped rule is no rule
                known = ", ".join(LoadPolicy.model_fields)
                loc, msg = "policy", f"unknown key {first['loc'][1]!r} (known: {known})"
        return _raise(source, f"{loc}: {msg}" if loc else msg, _line_of(doc, first["loc"]))


def _raise(source: str, problem: str, line: int | None) -> ManifestModel:
    raise ManifestError(source, problem, line=line)


def _line_of(doc: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest key of ``loc`` that the round-trip document knows."""
    line = None
    node = doc
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(node, dict) and key in node:
                line = lc.key(key)[0] + 1
            elif lc is not None and isinstance(node, list) and isinstance(key, int):
                line = lc.item(key)[0] + 1
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return line


def _plain(node: Any) -> Any:
    """The round-trip document as builtin types, each value keeping its YAML type (a key that
    is not a string stays one, so that the strict schema refuses it rather than renaming it)."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool | ScalarBoolean):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


# What a strict-schema type error says the value must be.
_KINDS = {
    "float_type": "a number",
    "int_type": "a whole number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
}


def _shown(value: Any) -> str:
    """A YAML value as models.yaml spells it, short and on one line."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
        return f"the string {text[:40] + '…' if len(text) > 40 else text}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:40]


def _type_problem(loc: tuple[Any, ...], kind: str, value: Any) -> str:
    if loc and loc[-1] == "traffic":
        kind = "a number from 0 to 100"
    problem = f"must be {kind}, not {_shown(value)}"
    if isinstance(value, str) and kind not in ("a string", "a mapping", "a list"):
        problem += " (write it without quotes)"
    return problem


def decode(raw: bytes, source: str = MANIFEST_FILE) -> str:
    """models.yaml's bytes as text: strict UTF-8 (the same rule for `check`, the CLI and the
    deploy agent), refused above :data:`MAX_MANIFEST_BYTES` before decoding."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(source, f"is larger than {MAX_MANIFEST_BYTES} bytes (the limit)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(
            source, f"is not UTF-8 (byte {e.start})", "save it as UTF-8", line=raw[: e.start].count(b"\n") + 1
        ) from None


def loads_bytes(raw: bytes, source: str = MANIFEST_FILE) -> Manifest:
    """Load models.yaml from its bytes (a file, or a blob read from git): the one loader."""
    return loads(decode(raw, source), source)


def loads(text: str, source: str = MANIFEST_FILE) -> Manifest:
    if len(text.encode(errors="surrogatepass")) > MAX_MANIFEST_BYTES:  # the YAML reader rejects them
        raise ManifestError(source, f"is larger than {MAX_MANIFEST_BYTES} bytes (the limit)")
    prescan(text, source)
    y = round_trip_yaml()
    try:
        for event in y.parse(text):
            if isinstance(event, AliasEvent):
                raise ManifestError(source, "YAML anchors and aliases are not allowed")
            tag = getattr(event, "tag", None)
            if tag is not None:
                line = event.start_mark.line + 1 if event.start_mark is not None else None
                raise ManifestError(source, f"YAML tags such as {tag!r} are not allowed", line=line)
        doc = y.load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or "is not valid YAML"
        raise ManifestError(source, f"invalid YAML: {problem}", line=line) from None
    except RecursionError:
        raise ManifestError(source, "is nested too deeply") from None
    if doc is None:
        doc = CommentedMap()
    return Manifest(doc, _validate(doc, source), source)


def load(path: Path) -> Manifest:
    """Load models.yaml; a missing file reads as an empty manifest."""
    if not path.exists():
        return loads(new_manifest_text(), str(path.name))
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(path.name, f"cannot be read ({e.strerror})") from None
    return loads_bytes(raw, path.name)


def missing_models(m: Manifest) -> str | None:
    """Why a manifest names no ``models:`` mapping (an empty file, or no such key), for `gitreg
    check`; None when it has one (``models: {}`` included)."""
    if isinstance(m.doc, dict) and isinstance(m.doc.get("models"), dict):
        return None
    return "has no `models:` mapping; write `version: 1` and `models: {}` (what `gitreg init` writes)"


def new_manifest_text() -> str:
    return HEADER + "version: 1\nmodels: {}\n"
