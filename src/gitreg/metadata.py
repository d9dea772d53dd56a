"""What a version says about itself: metadata.json, the tag message, the validation record.

Pure code (pydantic). ``metadata.json`` is untrusted input from a trainer: it is size-limited,
parsed with the standard json module, and every failure becomes a :class:`MetadataError`.
Unknown keys are kept.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from gitreg.errors import GitregError, MetadataError
from gitreg.versions import check_model_name, is_version

MAX_METADATA_BYTES = 1 << 20  # 1 MiB: metadata is a summary, not a data set
MAX_METADATA_DEPTH = 64  # nested objects/lists; the tag message's JSON serializer stops near 250
TAG_BLOCK_BEGIN = "-----BEGIN GITREG-----"
TAG_BLOCK_END = "-----END GITREG-----"
TAG_SCHEMA = 1
# A tag's summary block is untrusted (anyone can push a tag): bounded before and after parsing.
MAX_TAG_BLOCK_CHARS = 4 << 20  # metadata.json's 1 MiB, twice over, plus the files
MAX_TAG_FILES = 1_000
MAX_TAG_ENTRIES = 1_000  # metrics, and parameters (top-level keys), each
MAX_TAG_TEXT = 1_000  # characters of a name, a key or a short field
MAX_TAG_DESCRIPTION = 64 << 10
MAX_FILE_SIZE = 1 << 50  # 1 PiB


class BundleMetadata(BaseModel):
    """metadata.json as trainers write it: algo, framework, created_at, metrics, …"""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    algo: str = Field(validation_alias=AliasChoices("algo", "algorithm"), min_length=1)
    framework: str = Field(min_length=1)
    created_at: datetime
    metrics: dict[str, float] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("hyperparameters", "parameters")
    )
    input_shape: list[int] | None = None
    data_version: str | None = None
    code_commit: str | None = None
    parent: str | None = None
    env_id: str | None = None
    description: str | None = None
    architecture: str | None = None  # a state dict's "pkg.module:Class" (must be allow-listed)
    architecture_kwargs: dict[str, Any] | None = None  # its constructor's keyword arguments

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, x in v.items() if not math.isfinite(x)]
        if bad:
            raise ValueError(f"metric {bad[0]!r} is not a finite number")
        return v

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(v) > 8 or any(d < 1 or d > 1_000_000 for d in v)):
            raise ValueError("input_shape must be 1 to 8 positive dimensions (batch excluded)")
        return v

    @field_validator("parent")
    @classmethod
    def _parent(cls, v: str | None) -> str | None:
        if v is not None and not is_version(v):
            raise ValueError(f"parent {v!r} is not a version name like v2025-07-06--18h51")
        return v

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "metadata"
    if first["type"] == "missing":
        return f"missing required field {loc!r}"
    return f"{loc}: {first['msg']}"


def _unwritable(data: Any) -> str | None:
    """Why parsed JSON could not be written back into a tag message (None when it can).

    ``json.loads`` accepts lone surrogate escapes ("\\ud800") and deep nesting; both would crash
    the JSON serialization of the tag summary at registration, so they are refused here.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return f"is nested deeper than {MAX_METADATA_DEPTH} levels"
        if isinstance(node, dict):
            strings = list(node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            strings = []
            stack.extend((v, depth + 1) for v in node)
        else:
            strings = [node] if isinstance(node, str) else []
        for text in strings:
            try:
                text.encode()
            except UnicodeEncodeError:
                return f"contains a lone surrogate escape, which is not valid Unicode: {text[:40]!r}"
    return None


def parse_metadata(raw: bytes, source: str = "metadata.json") -> BundleMetadata:
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(source, f"is {len(raw)} bytes; the limit is {MAX_METADATA_BYTES}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise MetadataError(source, f"is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise MetadataError(source, "must be a JSON object")
    unfit = _unwritable(data)
    if unfit:
        raise MetadataError(source, unfit)
    try:
        return BundleMetadata.model_validate(data)
    except ValidationError as e:
        raise MetadataError(source, _one_line(e)) from None


class FileDigest(BaseModel):
    """One bundle file as recorded at registration: path relative to the bundle."""

    path: str
    md5: str
    size: int


class TagSummary(BaseModel):
    """The machine-readable block of a version tag's message (enough for list/show/compare)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(default=TAG_SCHEMA, alias="schema")
    model: str
    version: str
    algorithm: str
    framework: str
    created_at: datetime
    registered_at: datetime
    registered_by: str
    metrics: dict[str, float] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    files: list[FileDigest] = Field(default_factory=list)
    data_version: str | None = None
    code_commit: str | None = None
    parent: str | None = None
    env_id: str | None = None
    description: str | None = None
    input_shape: list[int] | None = None
    architecture: str | None = None


def summary_from(
    meta: BundleMetadata,
    *,
    model: str,
    version: str,
    files: list[FileDigest],
    registered_at: datetime,
    registered_by: str,
) -> TagSummary:
    return TagSummary(
        model=model,
        version=version,
        algorithm=meta.algo,
        framework=meta.framework,
        created_at=meta.created_at,
        registered_at=registered_at,
        registered_by=registered_by,
        metrics=meta.metrics,
        parameters=meta.hyperparameters,
        files=files,
        data_version=meta.data_version,
        code_commit=meta.code_commit,
        parent=meta.parent,
        env_id=meta.env_id,
        description=meta.description,
        input_shape=meta.input_shape,
        architecture=meta.architecture,
    )


def format_tag_message(summary: TagSummary, message: str | None = None) -> str:
    # One line, whatever the algorithm says: parse_tag_message drops exactly the first line.
    subject = " ".join(f"{summary.model} {summary.version}: {summary.algorithm}".split())
    body = summary.model_dump_json(by_alias=True, indent=2, exclude_none=True)
    parts = [subject, ""]
    if message:
        parts += [message.strip(), ""]
    parts += [TAG_BLOCK_BEGIN, body, TAG_BLOCK_END, ""]
    return "\n".join(parts)


def summary_problem(summary: TagSummary) -> str | None:
    """Why a summary block is out of bounds or names no model/version (None when it is fine)."""
    if len(summary.files) > MAX_TAG_FILES:
        return f"it lists {len(summary.files)} files; the limit is {MAX_TAG_FILES}"
    for what, entries in (("metrics", summary.metrics), ("parameters", summary.parameters)):
        if len(entries) > MAX_TAG_ENTRIES:
            return f"it has {len(entries)} {what}; the limit is {MAX_TAG_ENTRIES}"
        if any(len(k) > MAX_TAG_TEXT for k in entries):
            return f"a key of its {what} is longer than {MAX_TAG_TEXT} characters"
    short = {
        "model": summary.model,
        "version": summary.version,
        "algorithm": summary.algorithm,
        "framework": summary.framework,
        "registered_by": summary.registered_by,
        "data_version": summary.data_version,
        "code_commit": summary.code_commit,
        "parent": summary.parent,
        "env_id": summary.env_id,
        "architecture": summary.architecture,
    }
    for key, value in short.items():
        if value is not None and len(value) > MAX_TAG_TEXT:
            return f"its {key} is longer than {MAX_TAG_TEXT} characters"
    if summary.description is not None and len(summary.description) > MAX_TAG_DESCRIPTION:
        return f"its description is longer than {MAX_TAG_DESCRIPTION} characters"
    try:
        check_model_name(summary.model)
    except GitregError:
        return f"its model name {summary.model!r} is not a valid model name"
    if not is_version(summary.version):
        return f"its version {summary.version!r} is not a version name"
    if summary.input_shape is not None and len(summary.input_shape) > 8:
        return "its input_shape has more than 8 dimensions"
    for f in summary.files:
        parts = f.path.split("/")
        bad = not f.path or len(f.path) > MAX_TAG_TEXT or f.path.startswith("/") or ".." in parts
        if bad or "" in parts or any(ord(c) < 32 for c in f.path):
            return f"its file path {f.path[:80]!r} is not a path inside the model folder"
        if len(f.md5) > 64 or not 0 <= f.size <= MAX_FILE_SIZE:
            return f"its file {f.path!r} has a bad digest or size"
    return None


def parse_tag_block(text: str) -> tuple[TagSummary | None, str, str]:
    """(the summary block or None, the user's message, why there is none: "" when there is one).

    The block is bounded: longer than :data:`MAX_TAG_BLOCK_CHARS` it is not parsed at all, and a
    parsed one must pass :func:`summary_problem`."""
    padded = "\n" + text
    begin = padded.rfind(f"\n{TAG_BLOCK_BEGIN}\n")
    end = padded.find(f"\n{TAG_BLOCK_END}", begin + 1) if begin >= 0 else -1
    if begin < 0 or end < 0:
        return None, text.strip(), "the tag message has no gitreg block"
    human = text[:begin].strip().partition("\n")[2].strip()
    block = text[begin + len(TAG_BLOCK_BEGIN) : end]
    if len(block) > MAX_TAG_BLOCK_CHARS:
        return None, human, f"its gitreg block is {len(block)} characters; the limit is {MAX_TAG_BLOCK_CHARS}"
    try:
        summary = TagSummary.model_validate_json(block)
    except (ValidationError, ValueError):
        return None, human, "its gitreg block does not parse"
    problem = summary_problem(summary)
    if problem is not None:
        return None, human, problem
    return summary, human, ""


def parse_tag_message(text: str) -> tuple[TagSummary | None, str]:
    """(the summary block or None when the tag has none / a broken one, the user's message)."""
    summary, human, _ = parse_tag_block(text)
    return summary, human


class CheckResult(BaseModel):
    name: str
    ok: bool
    detail: str = ""


class ValidationRecord(BaseModel):
    """The result of `gitreg validate`, stored as a git note on the version's tag."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(default=1, alias="schema")
    version: str
    passed: bool
    checked_at: datetime
    checked_by: str = ""
    gitreg_version: str = ""
    torch_version: str | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    files: list[FileDigest] = Field(default_factory=list)
    load_seconds: float | None = None
    forward_seconds: float | None = None
    output_shape: list[int] | None = None
    # one observation, as validated: the metadata's input_shape, else learned from the model itself
    # (absent in notes written before it was recorded, and for a model that takes any width)
    input_shape: list[int] | None = None
    error: str | None = None
    policy_format: str | None = None  # torchscript | state_dict | safetensors, as the loader saw it

    def to_note(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2, exclude_none=True) + "\n"


def parse_validation_note(text: str) -> ValidationRecord | None:
    try:
        return ValidationRecord.model_validate_json(text)
    except (ValidationError, ValueError, GitregError):
        return None
