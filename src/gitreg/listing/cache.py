"""The list cache: `gitreg list --json` rows kept in ``.git/gitreg/list-cache``, an SQLite
database (stdlib ``sqlite3``), so that a warm listing parses no tag.

Two tables, keyed by Git object ids, which name immutable contents (an entry is never stale: a
re-created tag or a new note has a new id):

* ``tags``: a tag object id -> its version, its model and its row's JSON (``row``) with the
  three places (``c1``..``c3``) where the slots that do not come from the tag object go
  (status, stages, validation), and a crc32 of all of it (SQLite checks its pages' structure,
  not their contents);
* ``notes``: a note blob id -> the status it gives and its ``validation`` JSON piece;
* ``snapshots``: a listing's filters -> the digest of what it was made from (every version tag's
  name and object id, every note id, the stages models.yaml gives) and its whole JSON text. A
  listing whose inputs have not changed since (the usual case: nothing was registered, validated
  or promoted) is that text, read in one query, with no row assembled. The last
  :data:`SNAPSHOTS` listings are kept.

The rows depend on how they are rendered: the ``meta`` table holds :data:`LAYOUT` (the schema
version, bumped whenever the rendering changes, and the serializer's version); a file with
another layout is emptied and refilled. The file is untrusted input and never needed: damaged
(not a database, malformed, a bad checksum), unreadable or unwritable, it is ignored, rebuilt
when it can be, and listing works all the same. Concurrent listings each write their rows in
one transaction (SQLite's own locking; the busy ones give up on writing, not on listing).
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from pathlib import Path

#: Bump when the row rendering (listing/query.py) or the cached fields change.
SCHEMA_VERSION = 4  # 2: a tag is a version only when whole (issue 15); 3: 64 KiB pages; 4: snapshots
SNAPSHOTS = 4  # whole listings kept (distinct filters), the most recent
_BUSY_TIMEOUT_S = 2.0
_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) if hasattr(sqlite3, "SQLITE_NOTADB") else (11, 26)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tags (oid TEXT PRIMARY KEY, version TEXT NOT NULL, model TEXT NOT NULL,"
    " row BLOB NOT NULL, c1 INTEGER NOT NULL, c2 INTEGER NOT NULL, c3 INTEGER NOT NULL,"
    " crc INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS notes (blob TEXT PRIMARY KEY, status TEXT NOT NULL,"
    " validation BLOB NOT NULL, crc INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS snapshots (filters TEXT PRIMARY KEY, state TEXT NOT NULL,"
    " body BLOB NOT NULL, crc INTEGER NOT NULL)",
)
_TABLES = ("meta", "tags", "notes", "snapshots")
STATUSES = ("registered", "validated", "failed")
Parts = tuple[bytes | memoryview, bytes | memoryview, bytes | memoryview, bytes | memoryview]
_EMPTY: Parts = (b"", b"", b"", b"")


_PAGE_BYTES = 1 << 16


def layout() -> str:
    """What the cached rows depend on: the schema version and the serializer that wrote them."""
    import pydantic_core

    return f"{SCHEMA_VERSION}/{pydantic_core.__version__}"


def _crc(key: str, data: bytes) -> int:
    """The checksum of a row: its key fields (version, model, cuts; a note's status) and bytes."""
    return zlib.crc32(data, zlib.crc32(key.encode()))


def _tag_row(oid: str, version: str, model: str, parts: Parts) -> tuple[object, ...]:
    row = b"".join(parts)
    c1 = len(parts[0])
    c2 = c1 + len(parts[1])
    c3 = c2 + len(parts[2])
    return (oid, version, model, row, c1, c2, c3, _crc(f"{version}\0{model}\0{c1}\0{c2}\0{c3}", row))


def _is_corrupt(e: sqlite3.Error) -> bool:
    return getattr(e, "sqlite_errorcode", None) in _CORRUPT


def read_snapshot(path: Path | None, filters: str, state: str) -> bytes | None:
    """The JSON text of the listing with these ``filters``, if the file holds one made from
    inputs whose digest is ``state`` (and of this layout, and its checksum holds); else None."""
    if path is None or not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return None
    try:
        meta = con.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
        if meta is None or meta[0] != layout():
            return None
        row = con.execute("SELECT state, body, crc FROM snapshots WHERE filters = ?", (filters,)).fetchone()
    except sqlite3.Error:  # damaged, busy, another schema: the listing is assembled from rows
        return None
    finally:
        con.close()
    if row is None or row[0] != state or type(row[1]) is not bytes or _crc(filters + state, row[1]) != row[2]:
        return None
    return row[1]


class ListCache:
    """The rows of one listing: what the file held, plus what this listing added.

    ``tags``: tag object id -> (version, model, the row's 4 pieces) — version "" for an object
    that is no version; ``notes``: note blob id -> (status, validation piece)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.tags: dict[str, tuple[str, str, Parts]] = {}
        self.notes: dict[str, tuple[str, bytes]] = {}
        self._new_tags: dict[str, tuple[str, str, Parts]] = {}
        self._new_notes: dict[str, tuple[str, bytes]] = {}
        self.reset = False  # the file is damaged or of another layout: rewrite it whole
        self.snapshot: tuple[str, str, bytes] | None = None  # (filters, state, body) to keep

    @property
    def changed(self) -> bool:
        """Rows were added since the file was read (or the file must be rebuilt)."""
        return bool(self._new_tags or self._new_notes or self.reset)

    @classmethod
    def open(cls, path: Path | None) -> ListCache:
        """The cache at ``path`` (None: no cache, nothing read or written)."""
        cache = cls(path)
        if path is None or not path.is_file():
            return cache
        try:
            con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
        except sqlite3.Error:
            return cache
        try:
            cache._read(con)
        except sqlite3.Error as e:
            cache.tags, cache.notes = {}, {}
            # busy or locked: left to its writer; anything else (damage, another schema): rebuilt
            cache.reset = getattr(e, "sqlite_errorcode", None) not in _BUSY
        except (ValueError, TypeError):  # a row of the wrong shape: the file was tampered with
            cache.tags, cache.notes = {}, {}
            cache.reset = True
        finally:
            con.close()
        return cache

    def _read(self, con: sqlite3.Connection) -> None:
        row = con.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
        if row is None or row[0] != layout():
            self.reset = True
            return
        bad = False
        tags = self.tags
        for oid, version, model, row, c1, c2, c3, crc in con.execute(
            "SELECT oid, version, model, row, c1, c2, c3, crc FROM tags"
        ):
            if (
                not (type(oid) is type(version) is type(model) is str)
                or type(row) is not bytes
                or _crc(f"{version}\0{model}\0{c1}\0{c2}\0{c3}", row) != crc
            ):
                bad = True  # read again from git and rewritten
                continue
            view = memoryview(row)  # the pieces are views into the row: no copies
            tags[oid] = (version, model, (view[:c1], view[c1:c2], view[c2:c3], view[c3:]))
        notes = self.notes
        for blob, status, validation, crc in con.execute("SELECT blob, status, validation, crc FROM notes"):
            if type(blob) is not str or status not in STATUSES or type(validation) is not bytes:
                bad = True
                continue
            if _crc(status, validation) != crc:
                bad = True
                continue
            notes[blob] = (status, validation)
        self.reset = bad

    def add_tag(self, oid: str, version: str, model: str, parts: list[bytes]) -> None:
        entry = (version, model, (parts[0], parts[1], parts[2], parts[3]) if parts else _EMPTY)
        self.tags[oid] = self._new_tags[oid] = entry

    def add_note(self, blob: str, status: str, validation: bytes) -> None:
        self.notes[blob] = self._new_notes[blob] = (status, validation)

    def save(self, live_tags: set[str], live_notes: set[str]) -> None:
        """Write what changed, dropping the entries of tags and notes that no longer exist: one
        transaction. Failing to write (a read-only .git, a full disk, a busy file) is not an
        error: the next listing reads those tags again."""
        stale_tags = [k for k in self.tags if k not in live_tags]
        stale_notes = [k for k in self.notes if k not in live_notes]
        if self.path is None or not (self.changed or stale_tags or stale_notes or self.snapshot):
            return
        try:
            self._write(stale_tags, stale_notes, live_tags, live_notes)
        except sqlite3.Error as e:
            if _is_corrupt(e):  # damaged beyond what SQLite repairs: start a new file
                with contextlib.suppress(OSError, sqlite3.Error):
                    self.path.unlink(missing_ok=True)
                    self.reset = True
                    self._write([], [], live_tags, live_notes)
        except OSError:
            pass

    def _write(
        self, stale_tags: list[str], stale_notes: list[str], live_tags: set[str], live_notes: set[str]
    ) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.reset:  # another layout, or damage: a new file (readers keep the old one open)
            self.path.unlink(missing_ok=True)
        con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            # Rows are kilobytes each: 64 KiB pages read them about twice as fast as the default
            # 4 KiB (10,000 rows: 12 ms instead of 29). Only a new, empty file takes the setting.
            con.execute(f"PRAGMA page_size = {_PAGE_BYTES}")
            con.execute("PRAGMA synchronous = OFF")  # a cache: a torn file is detected and rebuilt
            con.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                con.execute(statement)
            if self.reset:  # another layout, or damage: the tables are made anew
                for table in _TABLES:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in _SCHEMA:
                    con.execute(statement)
                tags, notes = self.tags, self.notes
            else:
                tags, notes = self._new_tags, self._new_notes
                con.executemany("DELETE FROM tags WHERE oid = ?", ((k,) for k in stale_tags))
                con.executemany("DELETE FROM notes WHERE blob = ?", ((k,) for k in stale_notes))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('layout', ?)", (layout(),))
            con.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_tag_row(k, v, m, p) for k, (v, m, p) in tags.items() if k in live_tags),
            )
            con.executemany(
                "INSERT OR REPLACE INTO notes VALUES (?, ?, ?, ?)",
                ((k, s, t, _crc(s, t)) for k, (s, t) in notes.items() if k in live_notes),
            )
            if self.snapshot is not None:
                filters, state, body = self.snapshot
                con.execute(
                    "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)",
                    (filters, state, body, _crc(filters + state, body)),
                )
                con.execute(
                    "DELETE FROM snapshots WHERE rowid NOT IN"
                    " (SELECT rowid FROM snapshots ORDER BY rowid DESC LIMIT ?)",
                    (SNAPSHOTS,),
                )
            con.execute("COMMIT")
        finally:
            con.close()
