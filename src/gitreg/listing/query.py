"""`gitreg list --json`: the rows of :func:`gitreg.catalog.versions` as JSON text, byte for byte
what pydantic writes for them, from the list cache (see :mod:`gitreg.listing.cache`).

A warm listing is one ``for-each-ref`` of names and ids, one ``notes list`` and, when nothing
changed since the same listing was last made, its text read back whole; else a lookup per tag.
Tags and notes the cache lacks are read through one ``git cat-file --batch`` (only the newest
ones ``limit`` needs) and added. Each cached row is the tag's JSON cut around three slots that do
not come from the tag object (status and validation come from the note, stages from
models.yaml); a listing fills the slots in.
"""

from __future__ import annotations

import hashlib
import json
import operator

from gitreg.catalog import STATUSES, Candidate, VersionInfo, check_status, version_info, whole_problems
from gitreg.context import Context
from gitreg.gitrepo import ObjectReader, TagRecord
from gitreg.listing.cache import ListCache, read_snapshot
from gitreg.metadata import TagSummary, ValidationRecord, parse_tag_block, parse_validation_note
from gitreg.versions import is_version

_SLOTS: tuple[str, ...] = tuple(
    k for k in VersionInfo.model_fields if k in ("status", "stages", "validation")
)
# (status, stages, validation) -> the same three in the order VersionInfo has them
_IN_SLOT_ORDER = operator.itemgetter(*(("status", "stages", "validation").index(s) for s in _SLOTS))
_STATUS_JSON = {s: f',\n    "status": "{s}"'.encode() for s in STATUSES}
_NO_VALIDATION = b',\n    "validation": null'


def _order(name: str) -> tuple[str, int]:
    """The order of :func:`parse_version` for a valid version name, without parsing a date:
    the fixed-width minute sorts as text, then the same-minute sequence as a number."""
    seq = name[19:]
    return name[:18], (int(seq) if seq.isdecimal() else 0) if seq else 1


def _json_value(text: str, depth: int) -> bytes:
    """JSON text written at ``depth`` levels of two-space indentation (strings hold no raw
    newline, so every newline is the serializer's)."""
    return text.replace("\n", "\n" + "  " * depth).encode()


def row_parts(info: VersionInfo) -> list[bytes]:
    """The row's JSON as the list holds it, cut around the slots (each slot's text, filled in
    later, starts with its ",\n")."""
    text = info.model_dump_json(by_alias=True, indent=2)
    parts: list[bytes] = []
    pos = 0
    for key in _SLOTS:
        # Top-level keys are the only lines with exactly two spaces of indentation.
        start = text.index(f',\n  "{key}": ', pos)
        end = text.find(',\n  "', start + 1)
        parts.append(_json_value(text[pos:start], 1))
        pos = end if end >= 0 else len(text) - 2  # the last field ends at the closing "\n}"
    parts.append(_json_value(text[pos:], 1))
    parts[0] = b"  " + parts[0]
    return parts


def _stages_json(stages: tuple[str, ...]) -> bytes:
    import pydantic_core

    value = pydantic_core.to_json(list(stages), indent=2).decode() if stages else "[]"
    return b',\n    "stages": ' + _json_value(value, 2)


def _note_json(record: ValidationRecord | None) -> tuple[str, bytes]:
    if record is None:
        return "registered", _NO_VALIDATION
    text = record.model_dump_json(by_alias=True, indent=2)
    return ("validated" if record.passed else "failed"), b',\n    "validation": ' + _json_value(text, 2)


def versions_json(
    ctx: Context,
    model: str | None = None,
    status: str | None = None,
    stage: str | None = None,
    limit: int | None = None,
) -> bytes:
    """:func:`gitreg.catalog.versions` as the JSON text `gitreg list --json` prints. The cache is
    never needed: unreadable, corrupt or stale, it is ignored and rebuilt; when it cannot be
    written listing works all the same; ``GITREG_LIST_CACHE=0`` turns it off."""
    check_status(status)
    ctx.require_readable()
    limit = max(limit, 1) if limit else None  # as versions(): a negative limit keeps one row
    path = ctx.list_cache_path()
    live, notes_refs = ctx.git.version_tag_ids()
    if live:
        ctx.sync_notes(notes_refs)
    note_ids = ctx.git.note_ids() if live else {}
    held = _held_stages(ctx) if live else {}
    filters = json.dumps([model, status, stage, limit])
    state = _state(live, note_ids, held)
    body = read_snapshot(path, filters, state)
    if body is None:  # something changed since this listing was last made: assemble it
        cache = ListCache.open(path)
        body = _versions_json(ctx, cache, live, note_ids, held, model, status, stage, limit)
        cache.snapshot = (filters, state, body)
        cache.save({oid for _, oid in live}, set(note_ids.values()))
    return body


def _state(
    live: list[tuple[str, str]], note_ids: dict[str, str], held: dict[tuple[str, str], tuple[str, ...]]
) -> str:
    """The digest of everything a listing is made from: the version tags' names and object ids
    (objects are immutable), the notes' blob ids and the stages models.yaml gives."""
    digest = hashlib.sha256(" ".join(f"{n} {o}" for n, o in live).encode())
    digest.update(b"\0" + " ".join(f"{k} {v}" for k, v in sorted(note_ids.items())).encode())
    digest.update(b"\0" + json.dumps(sorted((m, v, list(s)) for (m, v), s in held.items())).encode())
    return digest.hexdigest()


def _versions_json(
    ctx: Context,
    cache: ListCache,
    live: list[tuple[str, str]],
    note_ids: dict[str, str],
    held: dict[tuple[str, str], tuple[str, ...]],
    model: str | None,
    status: str | None,
    stage: str | None,
    limit: int | None,
) -> bytes:
    tags = cache.tags
    # Unknown yet: a version name is read, others ignored; known: its version must match the
    # tag's name (version "" is an object that is no version).
    candidates = [
        (name, oid)
        for name, oid in live
        if (is_version(name) if (entry := tags.get(oid)) is None else entry[0] == name)
    ]
    # Newest first. As text, version names sort as versions unless a minute has ten or more
    # (the "-10" suffix): those need the numeric order of the suffix.
    candidates.sort(reverse=True)
    if any(len(name) > 20 for name, _ in candidates):
        candidates.sort(key=lambda c: _order(c[0]), reverse=True)
    held_names = {version for _, version in held}
    stage_texts: dict[tuple[str, ...], bytes] = {}
    notes = cache.notes
    out: list[bytes] = []
    count = 0
    with ctx.git.object_reader() as reader:
        start = size = 0
        while start < len(candidates) and not (limit and count >= limit):
            # With a limit, the newest tags it needs (then twice as many per round, when
            # filters or ignored tags leave it short); else all at once.
            size = max(limit - count, 2 * size) if limit else len(candidates)
            window = candidates[start : start + size]
            start += len(window)
            _fill(ctx, cache, reader, window, note_ids)
            for name, oid in window:
                entry = tags.get(oid)
                if entry is None or entry[0] != name:
                    continue  # a tag that only looks like a version: ignored, never an error
                _, tag_model, (p0, p1, p2, p3) = entry
                if model is not None and tag_model != model:
                    continue
                blob = note_ids.get(oid)
                note = notes.get(blob) if blob is not None else None
                row_status = note[0] if note is not None else "registered"
                if status is not None and row_status != status:
                    continue
                stages = held.get((tag_model, name), ()) if name in held_names else ()
                if stage is not None and stage not in stages:
                    continue
                stages_text = stage_texts.get(stages)
                if stages_text is None:
                    stages_text = stage_texts[stages] = _stages_json(stages)
                validation = note[1] if note is not None else _NO_VALIDATION
                a, b, c = _IN_SLOT_ORDER((_STATUS_JSON[row_status], stages_text, validation))
                out += (b",\n", p0, a, p1, b, p2, c, p3)
                count += 1
                if limit and count >= limit:
                    break
    if not out:
        return b"[]\n"
    out[0] = b"[\n"
    out.append(b"\n]\n")
    return b"".join(out)


def _fill(
    ctx: Context,
    cache: ListCache,
    reader: ObjectReader,
    window: list[tuple[str, str]],
    note_ids: dict[str, str],
) -> None:
    """Read and add the tags (and their notes) the cache lacks: the tag objects and notes in
    one round trip to git, then every new tag's files (is it a whole version?) in one more,
    through the same ``git cat-file --batch``. A tag that is no whole version is remembered as
    such (version ""): tag objects are immutable, so it is never checked again."""
    tags = [(name, oid) for name, oid in window if oid not in cache.tags]
    blobs = [b for _, oid in window if (b := note_ids.get(oid)) is not None and b not in cache.notes]
    if not tags and not blobs:
        return
    objects = reader.read([oid for _, oid in tags] + blobs)
    parsed: dict[str, tuple[TagRecord, TagSummary, str]] = {}
    candidates: list[Candidate] = []
    for _, oid in tags:
        if oid not in objects:  # gone since for-each-ref (deleted meanwhile): no row, nothing cached
            continue
        read = _tag_object(oid, *objects[oid])
        if read is None:
            cache.add_tag(oid, "", "", [])
            continue
        tag, summary, human = read
        parsed[oid] = (tag, summary, human)
        # Whole or not, whatever the ref's name (one tag object may have several): a listing
        # shows the row only under the name its summary gives (entry[0] == name).
        candidates.append((oid, tag.target_type, tag.commit, summary.version, summary))
    problems = whole_problems(ctx, reader, candidates)
    for oid, (tag, summary, human) in parsed.items():
        if problems.get(oid) != "":
            cache.add_tag(oid, "", "", [])
            continue
        row = row_parts(version_info(ctx, tag, summary, human, None))
        cache.add_tag(oid, summary.version, summary.model, row)
    for blob in blobs:
        kind, raw = objects.get(blob, ("", b""))
        if kind == "blob":
            record = parse_validation_note(raw.decode(errors="replace")) if raw else None
            cache.add_note(blob, *_note_json(record))


def _tag_object(oid: str, kind: str, raw: bytes) -> tuple[TagRecord, TagSummary, str] | None:
    """(the tag, its summary block, its user message) for an annotated tag object whose block
    parses within bounds; None for anything else (a lightweight tag's commit, a foreign tag, a
    broken or oversized summary block)."""
    head, _, body = raw.partition(b"\n\n")
    lines = head.split(b"\n", 2)
    if kind != "tag" or len(lines) < 2:
        return None
    if not lines[0].startswith(b"object ") or not lines[1].startswith(b"type "):
        return None
    message = body.decode(errors="replace")
    summary, human, _ = parse_tag_block(message)
    if summary is None:
        return None
    tag = TagRecord(
        name=summary.version,
        object=oid,
        commit=lines[0][len(b"object ") :].decode(),
        annotated=True,
        tagger_name="",
        tagger_email="",
        tagger_date=None,
        message=message,
        target_type=lines[1][len(b"type ") :].decode(),
    )
    return tag, summary, human


def _held_stages(ctx: Context) -> dict[tuple[str, str], tuple[str, ...]]:
    """(model, version) -> the stages it holds, for every version models.yaml names."""
    manifest = ctx.manifest()
    held: dict[tuple[str, str], tuple[str, ...]] = {}
    for name, entry in manifest.model.models.items():
        named = {*entry.stages.values(), *entry.archived}
        if entry.canary is not None:
            named.add(entry.canary.version)
        for version in named:
            held[(name, version)] = tuple(manifest.stages_of(name, version))
    return held
