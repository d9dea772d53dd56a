"""What git prints, parsed into plain dataclasses: pure functions, no process, no git import.

Each parser takes the decoded output of one git command whose format is fixed here (the
``--format`` strings live beside their parsers), so the two cannot drift apart; the records
are what leaves :mod:`gitreg.gitrepo`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

TAG_FIELDS = (
    "%(refname:strip=2)",
    "%(objectname)",
    "%(objecttype)",
    "%(*objectname)",
    "%(taggername)",
    "%(taggeremail:trim)",
    "%(taggerdate:iso-strict)",
    "%(*objecttype)",
    "%(contents)",
)
TAG_FORMAT = "%00".join(TAG_FIELDS) + "%00"
# \x1e opens each record: an empty body yields "\0\0" inside a record, so NULs cannot end one.
LOG_FORMAT = "%x1e%H%x00%P%x00%an <%ae>%x00%aI%x00%s%x00%b%x00"


@dataclass(frozen=True)
class TagRecord:
    name: str
    object: str  # the tag object (annotated) or the commit (lightweight)
    commit: str  # the commit the tag points at
    annotated: bool
    tagger_name: str
    tagger_email: str
    tagger_date: datetime | None
    message: str
    target_type: str = "commit"  # what an annotated tag points at: commit, tree, blob or tag


@dataclass(frozen=True)
class CommitRecord:
    sha: str
    parents: tuple[str, ...]
    author: str
    date: datetime
    subject: str
    body: str


@dataclass(frozen=True)
class SignatureCheck:
    signed: bool  # the tag carries a signature (verified or not)
    verified: bool  # git verify-tag accepts it
    signer: str | None  # who, as git reports a good signature
    format: str | None  # "ssh" or "openpgp"
    reason: str  # why it does not verify ("" when it does)


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    type: str
    sha: str


@dataclass(frozen=True)
class TransferProgress:
    """One progress report of a clone, fetch or push, as git prints it on stderr.

    ``stage`` is git's own phase ("counting objects", "receiving objects", "resolving deltas",
    "writing objects", ...); ``total`` is None while git does not know it yet; ``done`` marks
    the last report of a stage. A front end feeds these to a progress bar, one task a stage."""

    operation: str  # "clone", "fetch" or "push"
    stage: str
    current: int
    total: int | None
    message: str  # what git adds after the counts, e.g. "1.20 MiB | 2.40 MiB/s"
    done: bool


def parse_tag_records(out: str) -> list[TagRecord]:
    """``git for-each-ref --format=TAG_FORMAT`` output -> records, in git's order."""
    fields = out.split("\0")
    n = len(TAG_FIELDS)
    records: list[TagRecord] = []
    for i in range(0, len(fields) - n + 1, n):
        chunk = fields[i : i + n]
        name = chunk[0].lstrip("\n")
        obj, typ, peeled = chunk[1], chunk[2], chunk[3]
        date = None
        if chunk[6]:
            try:
                date = datetime.fromisoformat(chunk[6])
            except ValueError:
                date = None
        records.append(
            TagRecord(
                name=name,
                object=obj,
                commit=peeled if typ == "tag" else obj,
                annotated=typ == "tag",
                tagger_name=chunk[4],
                tagger_email=chunk[5],
                tagger_date=date,
                message=chunk[8] if typ == "tag" else "",
                target_type=chunk[7] if typ == "tag" else typ,
            )
        )
    return records


def parse_log(out: str) -> list[CommitRecord]:
    """``git log --format=LOG_FORMAT`` output -> records, newest first."""
    records = []
    for chunk in out.split("\x1e"):
        parts = chunk.split("\0")
        if len(parts) < 6:
            continue
        sha, parents, author, date, subject, body = parts[:6]
        records.append(
            CommitRecord(sha, tuple(parents.split()), author, datetime.fromisoformat(date), subject, body)
        )
    return records


def parse_ls_tree(out: str) -> list[TreeEntry]:
    """``git ls-tree -r -z`` output -> entries."""
    entries = []
    for item in out.split("\0"):
        if not item:
            continue
        meta, name = item.split("\t", 1)
        mode, typ, sha = meta.split()
        entries.append(TreeEntry(name, mode, typ, sha))
    return entries


def parse_status_paths(out: str) -> list[str]:
    """``git status --porcelain=v1 -z`` output -> the changed paths (a rename's target only)."""
    changed = []
    items = out.split("\0")
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if not item:
            continue
        changed.append(item[3:])
        if item[0] in "RC":
            i += 1  # the rename source follows
    return changed


def parse_ls_remote_tags(out: str) -> set[str]:
    """``git ls-remote --tags --refs`` output -> tag names."""
    refs = [line.split("\t", 1)[1] for line in out.splitlines() if "\t" in line]
    return {ref.removeprefix("refs/tags/") for ref in refs}


def parse_note_ids(out: str) -> dict[str, str]:
    """``git notes list`` output ("<note blob> <annotated object>" lines) -> object -> blob."""
    words = out.split()
    return dict(zip(words[1::2], words[::2], strict=True))


def git_reason(stderr: str, default: str) -> str:
    """The line of git's stderr that says why (its first error:/fatal: line, else its last
    line), without the prefix; ``default`` when git said nothing."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reason = next((ln for ln in lines if ln.startswith(("error:", "fatal:"))), lines[-1] if lines else "")
    return reason.removeprefix("error: ").removeprefix("fatal: ") or default


def signature_format(raw_tag: bytes) -> str | None:
    """ "ssh", "openpgp" or None: the kind of signature a raw tag object carries."""
    if b"\n-----BEGIN SSH SIGNATURE-----" in raw_tag:
        return "ssh"
    if b"\n-----BEGIN PGP SIGNATURE-----" in raw_tag:
        return "openpgp"
    return None


def parse_signer(text: str) -> tuple[str | None, str | None]:
    """(signer, format) from ``git verify-tag -v`` output, when it reports a good signature."""
    for line in text.splitlines():
        m = re.search(r'Good "[^"]*" signature for (\S+) with (\S+) key (\S+)', line)
        if m:
            return f"{m.group(1)} ({m.group(2)} {m.group(3)})", "ssh"
        m = re.search(r'Good signature from "([^"]+)"', line)
        if m:
            return m.group(1), "openpgp"
    return None, None
