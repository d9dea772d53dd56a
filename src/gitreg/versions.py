"""Version names: ``v2025-07-06--18h51`` (UTC minute), ``-2``, ``-3`` … within one minute.

Pure code. :func:`format_version` and :func:`parse_version` are exact inverses: every string
``parse_version`` accepts is returned unchanged by ``format_version(parse_version(s))``. Anything
else is not a version (``is_version`` is False) and is ignored by the registry, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gitreg.errors import InvalidModelName, InvalidReference, InvalidVersionName

#: The largest same-minute sequence number (the suffix): a version name is short and bounded.
MAX_SEQ = 999_999
VERSION_PATTERN = r"^v\d{4}-\d{2}-\d{2}--\d{2}h\d{2}(-\d{1,6})?$"
# Stricter than VERSION_PATTERN so that parse/format stay inverses: no "-0", "-1" or "-02", and
# at most MAX_SEQ (six digits): "-99999999999999999999" is no version.
_STRICT = re.compile(
    r"v(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})--(?P<h>\d{2})h(?P<mi>\d{2})(?:-(?P<seq>[2-9]|[1-9]\d{1,5}))?",
    re.ASCII,  # \d must not match '٢' and other Unicode digits: format would not give them back
)
MODEL_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_MODEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


@dataclass(frozen=True, order=True)
class VersionName:
    """A parsed version name; ordering is time order (then the same-minute sequence)."""

    minute: datetime  # UTC, seconds and microseconds zero
    seq: int = 1  # 1 for the first version of that minute (no suffix), then 2, 3, …

    def __str__(self) -> str:
        return format_version(self)


def format_version(v: VersionName) -> str:
    m = v.minute
    base = f"v{m.year:04d}-{m.month:02d}-{m.day:02d}--{m.hour:02d}h{m.minute:02d}"
    return base if v.seq == 1 else f"{base}-{v.seq}"


def parse_version(name: str) -> VersionName:
    m = _STRICT.fullmatch(name)
    if m is None:
        raise InvalidVersionName(name)
    try:
        minute = datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), tzinfo=UTC)
    except ValueError:
        raise InvalidVersionName(name) from None
    return VersionName(minute, int(m["seq"]) if m["seq"] else 1)


def is_version(name: str) -> bool:
    try:
        parse_version(name)
    except InvalidVersionName:
        return False
    return True


def sort_key(name: str) -> VersionName:
    return parse_version(name)


def version_for(when: datetime) -> VersionName:
    """The first-of-its-minute version name for a moment (converted to UTC)."""
    if when.tzinfo is None:
        raise ValueError("version_for needs an aware datetime")
    utc = when.astimezone(UTC).replace(second=0, microsecond=0)
    return VersionName(utc, 1)


def next_free(when: datetime, existing: Iterable[str]) -> str:
    """The version name for ``when``, suffixed ``-2``, ``-3`` … past those already taken."""
    base = version_for(when)
    taken = set(existing)
    seq = 1
    while format_version(VersionName(base.minute, seq)) in taken:
        seq += 1
    return format_version(VersionName(base.minute, seq))


def check_model_name(name: str) -> str:
    if not _MODEL.fullmatch(name) or name in {".", ".."}:
        raise InvalidModelName(name)
    return name


# -- references: what people ask for ------------------------------------------------------------
#: The selectors after ``MODEL@`` that are no version name: a stage of models.yaml (production,
#: staging or another stage name), the canary, or the newest registered version.
CANARY = "canary"
LATEST = "latest"
_STAGE = re.compile(r"[a-z][a-z0-9_-]{0,39}", re.ASCII)


@dataclass(frozen=True)
class Reference:
    """A parsed reference: ``version`` alone (``v2025-07-06--18h51``), or ``model`` with a
    ``selector`` that is a version name, a stage, ``canary`` or ``latest``."""

    text: str
    model: str | None
    selector: str

    @property
    def is_version(self) -> bool:
        return is_version(self.selector)


def parse_reference(text: str) -> Reference:
    """``v2025-07-06--18h51``, ``policy@production``, ``policy@staging``, ``policy@canary``,
    ``policy@latest`` or ``policy@v2025-07-06--18h51``; :class:`InvalidReference` saying which
    part is wrong otherwise (``policy@archived`` names no single version)."""
    if "@" not in text:
        parse_version(text)  # InvalidVersionName: what a plain name that is no version always got
        return Reference(text, None, text)
    model, _, selector = text.partition("@")
    if not model:
        raise InvalidReference(text, "the model name before @ is empty")
    try:
        check_model_name(model)
    except InvalidModelName:
        raise InvalidReference(text, f"{model[:40]!r} is not a model name") from None
    if not selector:
        raise InvalidReference(text, "the stage after @ is empty")
    if selector == "archived":
        raise InvalidReference(text, "archived is a list of versions, not one: name the version")
    if not (is_version(selector) or _STAGE.fullmatch(selector)):
        raise InvalidReference(text, f"{selector[:40]!r} is neither a stage nor a version name")
    return Reference(text, model, selector)


# A state dict's architecture: the class that builds the module, "pkg.module:ClassName".
ARCHITECTURE_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
_ARCHITECTURE_RE = re.compile(ARCHITECTURE_PATTERN)


def is_architecture(spec: str) -> bool:
    """True for a well-formed ``"pkg.module:ClassName"``."""
    return bool(_ARCHITECTURE_RE.fullmatch(spec))
