"""The list cache (.git/gitreg/list-cache) behind `gitreg list --json`: warm and cold listings
print the same bytes as pydantic does for `Registry.versions()`; entries are keyed by immutable
object ids, so a re-created tag or a new note shows fresh data; a damaged, foreign or unwritable
cache is ignored and listing still works; concurrent listings leave one whole, valid file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.bundles import write_bundle
from gitreg.testing.cli import run_cli
from gitreg.testing.clock import FixedClock
from gitreg.testing.env import isolated_home
from gitreg.testing.repos import git

A = "v2025-07-06--18h51"  # policy, with a --message; production
B = "v2025-07-06--19h51"  # other; validated
EXTRA_START = datetime(2025, 7, 8, 0, 0, tzinfo=UTC)
EXTRA = [f"v{(EXTRA_START + timedelta(minutes=i)):%Y-%m-%d--%Hh%M}" for i in range(8)] + [
    "v2025-07-08--00h07-2",
    "v2025-07-08--00h07-10",  # sorts after -2 as a version, before it as text
]
IGNORED = ["v2025-07-09--00h00", "v2025-07-09--00h01", "v2025-07-09--00h02", "v2025-07-09--00h03"]


def cache_file(repo: Path) -> Path:
    return repo / ".git" / "gitreg" / "list-cache"


def tag_ids(repo: Path, *names: str) -> set[str]:
    """The objects these tags point at (the lightweight IGNORED[0] points at A's tag object)."""
    return {git(repo, "rev-parse", f"refs/tags/{name}") for name in names}


def add_note(repo: Path, version: str, passed: bool, **extra: Any) -> None:
    record = {
        "schema": 1,
        "version": version,
        "passed": passed,
        "checked_at": "2025-07-08T00:00:00Z",
        **extra,
    }
    obj = git(repo, "rev-parse", f"refs/tags/{version}")
    git(repo, "notes", "--ref=refs/notes/gitreg", "add", "-f", "-m", json.dumps(record), obj)


def retag(repo: Path, source: str, name: str, edit: tuple[str, str] | None = None) -> None:
    """An annotated tag ``name`` on ``source``'s commit whose message is ``source``'s with the
    version renamed (and ``edit`` applied)."""
    message = git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{source}")
    message = message.replace(source, name)
    if edit is not None:
        assert edit[0] in message
        message = message.replace(*edit)
    commit = git(repo, "rev-parse", f"{source}^{{commit}}")
    subprocess.run(
        ["git", "tag", "-f", "-a", "--cleanup=verbatim", "-F", "-", name, commit],
        cwd=repo,
        input=message,
        text=True,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real registrations, a stage, notes, cheap extra versions and tags to be ignored."""
    from gitreg.registry import Registry

    base = tmp_path_factory.mktemp("listcache")
    repo = base / "registry"
    with isolated_home(base / "home"):
        Registry.init(repo, remote=str(base / "dvc-remote"), ci="none")
        clock = FixedClock(datetime(2025, 7, 6, 18, 51, 23, tzinfo=UTC))
        reg = Registry(repo, clock=clock)
        meta = {
            "algo": "DQN",
            "framework": "torchscript",
            "created_at": "2025-07-06T18:00:00+02:00",
            "metrics": {"reward": 100.0, "loss": 0.25},
            "hyperparameters": {"lr": 0.001, "layers": [16, 16], "name": "naïve ✓"},
            "description": 'quotes " and \\ and unicode ✓',
        }
        a = reg.register(
            write_bundle(base / "a", 0, metadata=meta), "policy", message="first one\n\nwith a body"
        )
        clock.advance(minutes=60)
        b = reg.register(write_bundle(base / "b", 1, metadata={**meta, "algo": "SAC"}), "other")
        assert (a.version, b.version) == (A, B)
        manifest = repo / "models.yaml"
        text = manifest.read_text()
        manifest.write_text(
            text.replace(
                "    path: models/policy\n", f"    path: models/policy\n    stages:\n      production: {A}\n"
            )
        )
        git(repo, "commit", "-q", "-am", "promote by hand")
        add_note(repo, B, True, extra_key={"kept": [1, 2]})
        for i, name in enumerate(EXTRA):
            retag(repo, A, name, ('"reward": 100.0', f'"reward": {100 + i}.5'))
        add_note(repo, EXTRA[0], False)
        # Ignored, never errors: a lightweight version-named tag, a version-named tag without a
        # summary block, a tag whose block names another version, a foreign tag.
        git(repo, "tag", "v2025-07-09--00h00", A)  # A's tag object, under another name
        git(repo, "tag", "-a", "-m", "no block here", "v2025-07-09--00h01", A)
        retag(repo, A, "v2025-07-09--00h02", ('"version": "v2025-07-09--00h02"', f'"version": "{B}"'))
        git(repo, "tag", "v2025-07-09--00h03", f"{A}^{{commit}}")  # a commit
        git(repo, "tag", "-a", "-m", "release", "v1.0", A)
    return repo


@pytest.fixture
def repo(built: Path, tmp_path: Path) -> Path:
    path = tmp_path / "registry"
    shutil.copytree(built, path, symlinks=True)
    return path


def reference(repo: Path, **kw: Any) -> bytes:
    """What `gitreg list --json` printed before the cache: pydantic's dump of versions()."""
    from pydantic import TypeAdapter

    from gitreg.registry import Registry, VersionInfo

    rows = Registry(repo).versions(**kw)
    if not rows:
        return b"[]\n"
    return TypeAdapter(list[VersionInfo]).dump_json(rows, indent=2, by_alias=True) + b"\n"


def listed(repo: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "gitreg"), "list", "--json", *args],
        cwd=repo,
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    return proc.stdout


def test_cold_and_warm_print_what_pydantic_printed(repo: Path) -> None:
    assert not cache_file(repo).exists()
    expected = reference(repo)
    cold = listed(repo, "--limit", "0")
    assert cache_file(repo).is_file()
    stamp = cache_file(repo).stat().st_mtime_ns
    warm = listed(repo, "--limit", "0")
    assert cold == warm == expected
    assert cache_file(repo).stat().st_mtime_ns == stamp  # nothing new: not rewritten
    rows = json.loads(warm)
    assert [r["version"] for r in rows] == [*EXTRA[::-1][:2][::-1][::-1], *EXTRA[:8][::-1], B, A]
    assert {"version", "model", "algorithm", "created_at", "status", "stages", "metrics"} <= set(rows[0])
    by_version = {r["version"]: r for r in rows}
    assert by_version[A]["stages"] == ["production"]
    assert by_version[A]["message"] == "first one\n\nwith a body"
    assert by_version[B]["status"] == "validated"
    assert by_version[B]["validation"]["extra_key"] == {"kept": [1, 2]}
    assert by_version[EXTRA[0]]["status"] == "failed"
    assert by_version[EXTRA[3]]["metrics"]["reward"] == 103.5
    assert listed(repo, "--limit", "0", env={"GITREG_LIST_CACHE": "0"}) == expected


@pytest.mark.parametrize(
    "args",
    [
        {"model": "policy"},
        {"model": "other"},
        {"model": "nope"},
        {"status": "validated"},
        {"status": "failed"},
        {"status": "registered", "limit": 3},
        {"stage": "production"},
        {"stage": "staging"},
        {"limit": 1},
        {"limit": 4},
        {"model": "policy", "limit": 2},
    ],
)
def test_filters_cold_and_warm(repo: Path, args: dict[str, Any]) -> None:
    from gitreg.registry import Registry

    expected = reference(repo, **args)
    cold = Registry(repo).versions_json(**args)
    warm = Registry(repo).versions_json(**args)
    assert cold == warm == expected
    flags = [x for k, v in args.items() for x in (f"--{k}", str(v))]
    assert listed(repo, *flags, *([] if "limit" in args else ["--limit", "0"])) == expected


def test_a_retagged_version_shows_the_new_tag(repo: Path) -> None:
    name = EXTRA[2]
    before = json.loads(listed(repo, "--limit", "0"))
    old = next(r for r in before if r["version"] == name)
    assert old["metrics"]["reward"] == 102.5
    git(repo, "tag", "-d", name)
    retag(repo, A, name, ('"reward": 100.0', '"reward": 7.25'))
    after = json.loads(listed(repo, "--limit", "0"))
    new = next(r for r in after if r["version"] == name)
    assert new["metrics"]["reward"] == 7.25
    assert new["tag_object"] != old["tag_object"]
    assert listed(repo, "--limit", "0") == reference(repo)
    # The deleted tag object's entry is gone from the file.
    from gitreg.listing import ListCache

    assert old["tag_object"] not in ListCache.open(cache_file(repo)).tags


def test_notes_added_changed_and_removed(repo: Path) -> None:
    name = EXTRA[5]

    def status() -> str:
        rows = json.loads(listed(repo, "--limit", "0"))
        return str(next(r["status"] for r in rows if r["version"] == name))

    assert status() == "registered"
    add_note(repo, name, True)
    assert status() == "validated"
    add_note(repo, name, False)
    assert status() == "failed"
    obj = git(repo, "rev-parse", f"refs/tags/{name}")
    git(repo, "notes", "--ref=refs/notes/gitreg", "remove", obj)
    assert status() == "registered"
    git(repo, "notes", "--ref=refs/notes/gitreg", "add", "-f", "-m", "not json", obj)
    assert status() == "registered"
    assert listed(repo, "--limit", "0") == reference(repo)


def test_a_stage_change_shows_at_once(repo: Path) -> None:
    listed(repo, "--limit", "0")
    manifest = repo / "models.yaml"
    manifest.write_text(manifest.read_text().replace(f"production: {A}", f"staging: {EXTRA[1]}"))
    rows = json.loads(listed(repo, "--limit", "0", "--stage", "staging"))
    assert [r["version"] for r in rows] == [EXTRA[1]]
    assert listed(repo, "--limit", "0") == reference(repo)


def corruptions(good: bytes, tmp: Path) -> dict[str, bytes]:
    """Damaged files (bytes) and well-formed databases that are not this cache (edited copies)."""
    import sqlite3

    def flip(at: int) -> bytes:  # inside a cached row or a snapshot: SQLite itself cannot tell
        flipped = bytearray(good)
        flipped[at + 4] ^= 0x01
        return bytes(flipped)

    def edited(*statements: str) -> bytes:
        copy = tmp / f"edited-{len(list(tmp.iterdir()))}.sqlite"
        copy.write_bytes(good)
        con = sqlite3.connect(copy, isolation_level=None)
        for statement in statements:
            con.execute(statement)
        con.close()
        return copy.read_bytes()

    return {
        "empty": b"",
        "garbage": b"\x00\xff" * 1000,
        "truncated": good[: len(good) // 2],
        "bit flip in a row": flip(good.index(b'"algorithm"')),
        "bit flip in a snapshot": flip(good.rindex(b'"algorithm"')),
        "a snapshot of other inputs": edited("UPDATE snapshots SET state = 'x'"),
        "a snapshot of the wrong type": edited("UPDATE snapshots SET body = 1"),
        "another schema version": edited("UPDATE meta SET value = '0/old' WHERE key = 'layout'"),
        "no layout": edited("DELETE FROM meta"),
        "a table missing": edited("DROP TABLE notes"),
        "wrong types": edited("UPDATE tags SET version = 1"),
        "bad status": edited("UPDATE notes SET status = 'passed'"),
        "another database": edited(
            "DROP TABLE tags", "DROP TABLE notes", "DROP TABLE meta", "CREATE TABLE t (x)"
        ),
        "pickle-like": b"\x80\x04\x95" + good[3:],
    }


def test_a_damaged_cache_is_ignored_and_rebuilt(repo: Path, tmp_path: Path) -> None:
    from gitreg.listing import ListCache

    expected = reference(repo)
    assert listed(repo, "--limit", "0") == expected
    good = cache_file(repo).read_bytes()
    whole = ListCache.open(cache_file(repo))
    assert not whole.changed and whole.tags and whole.notes
    work = tmp_path / "edits"
    work.mkdir()
    for what, data in corruptions(good, work).items():
        cache_file(repo).write_bytes(data)
        assert listed(repo, "--limit", "0") == expected, what  # a snapshot of it, or rows
        assert listed(repo, "--limit", "2") == reference(repo, limit=2), what  # rows: no snapshot yet
        assert listed(repo, "--limit", "0") == expected, what
        rebuilt = ListCache.open(cache_file(repo))
        assert not rebuilt.changed, f"{what}: not rebuilt"
        assert (rebuilt.tags, rebuilt.notes) == (whole.tags, whole.notes), f"{what}: not rebuilt"


def test_a_schema_version_bump_empties_the_cache(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written under another SCHEMA_VERSION are never served: the file is refilled."""
    from gitreg.listing import ListCache, cache

    expected = reference(repo)
    assert listed(repo, "--limit", "0") == expected
    before = ListCache.open(cache_file(repo))
    monkeypatch.setattr(cache, "SCHEMA_VERSION", cache.SCHEMA_VERSION + 1)
    stale = ListCache.open(cache_file(repo))
    assert stale.tags == {} and stale.notes == {} and stale.changed
    from gitreg.registry import Registry

    assert Registry(repo).versions_json() == expected
    after = ListCache.open(cache_file(repo))
    assert not after.changed and (after.tags, after.notes) == (before.tags, before.notes)


def test_listing_works_when_the_cache_cannot_be_written(repo: Path) -> None:
    expected = reference(repo)
    path = cache_file(repo)
    path.mkdir(parents=True)  # in the way: cannot be read as a file nor replaced
    assert listed(repo, "--limit", "0") == expected
    assert listed(repo, "--limit", "2") == reference(repo, limit=2)
    assert path.is_dir() and not list(path.parent.glob(".list-cache-*"))


def test_listing_works_when_nothing_can_be_written(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a read-only .git (root writes through file modes: the failure is simulated)."""
    import errno
    import sqlite3

    from gitreg.registry import Registry

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    def refuse_db(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    expected = reference(repo)
    monkeypatch.setattr(sqlite3, "connect", refuse_db)
    assert Registry(repo).versions_json() == expected
    assert not cache_file(repo).exists()
    monkeypatch.setattr(Path, "mkdir", refuse)
    assert Registry(repo).versions_json(limit=3) == reference(repo, limit=3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
def test_listing_works_in_a_read_only_git_dir(repo: Path) -> None:
    expected = reference(repo)
    gitdir = repo / ".git"
    modes = {p: p.stat().st_mode for p in [gitdir, *gitdir.rglob("*")] if p.is_dir()}
    try:
        for p in modes:
            p.chmod(0o555)
        assert listed(repo, "--limit", "0") == expected
        assert not cache_file(repo).exists()
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_concurrent_listings_leave_one_valid_cache(repo: Path) -> None:
    from gitreg.listing import ListCache

    expected = reference(repo)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: listed(repo, "--limit", "0"), range(6)))
    assert all(out == expected for out in outs)
    loaded = ListCache.open(cache_file(repo))
    assert not loaded.changed and set(loaded.tags) == tag_ids(repo, *EXTRA, A, B, *IGNORED)
    assert not list(cache_file(repo).parent.glob(".list-cache-*"))
    assert listed(repo, "--limit", "0") == expected


def test_limit_reads_only_the_newest(repo: Path, tmp_path: Path) -> None:
    from gitreg.listing import ListCache

    trace = tmp_path / "trace.jsonl"
    out = listed(repo, "--limit", "2", env={"GIT_TRACE2_EVENT": str(trace)})
    assert out == reference(repo, limit=2)
    loaded = ListCache.open(cache_file(repo))
    newest = [*IGNORED, EXTRA[-1], EXTRA[-2]]  # the ignored ones are newer
    assert set(loaded.tags) == tag_ids(repo, *newest)
    starts = [json.loads(x) for x in trace.read_text().splitlines()]
    argv = [e["argv"][1:] for e in starts if e.get("event") == "start" and "/" not in e["sid"]]
    assert [a[0] for a in argv].count("cat-file") == 1
    # A later full listing completes the cache, keeping what the first one read.
    assert listed(repo, "--limit", "0") == reference(repo)
    assert set(ListCache.open(cache_file(repo)).tags) == tag_ids(repo, *EXTRA, A, B, *IGNORED)


def test_warm_listing_reads_no_object(repo: Path, tmp_path: Path) -> None:
    listed(repo, "--limit", "0")
    trace = tmp_path / "trace.jsonl"
    listed(repo, "--limit", "0", env={"GIT_TRACE2_EVENT": str(trace)})
    starts = [json.loads(x) for x in trace.read_text().splitlines()]
    argv = [e["argv"][1:] for e in starts if e.get("event") == "start" and "/" not in e["sid"]]
    assert "cat-file" not in [a[0] for a in argv], argv
    assert len(argv) <= 4, argv


def test_empty_registry_and_cli_table_unchanged(repo_dir: Path) -> None:
    assert listed(repo_dir) == b"[]\n"
    proc = run_cli("list", cwd=repo_dir, check=True)
    assert "No versions" in proc.stdout


def test_object_reader_rounds_chunks_and_missing_ids(tmp_path: Path) -> None:
    """One git process for any number of rounds; more ids than one chunk; unknown ids left out."""
    from gitreg.gitrepo import GitRepo, ObjectReader

    repo = tmp_path / "objects"
    repo.mkdir()
    git(repo, "init", "-q")
    stream = b"".join(b"blob\ndata %d\n%s\n" % (len(b"blob %d\n" % i), b"blob %d\n" % i) for i in range(1200))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=stream + b"done\n", check=True)
    listing = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
    ids = [line.split()[0] for line in listing.splitlines() if line.endswith(" blob")]
    assert len(ids) == 1200 > ObjectReader._CHUNK
    with GitRepo(repo).object_reader() as reader:
        first = reader.read([*ids[:700], "0" * 40])
        second = reader.read(ids[700:])
        assert reader.read([]) == {}
    assert "0" * 40 not in first and len(first) + len(second) == 1200
    texts = {data for _, data in [*first.values(), *second.values()]}
    assert texts == {b"blob %d\n" % i for i in range(1200)}
    assert {kind for kind, _ in first.values()} == {"blob"}


def test_a_negative_limit(repo: Path) -> None:
    """The API keeps versions()' reading (one row); the CLI refuses it."""
    from gitreg.registry import Registry

    assert Registry(repo).versions_json(limit=-1) == reference(repo, limit=-1) == reference(repo, limit=1)
    proc = run_cli("list", "--json", "--limit", "-1", cwd=repo)
    assert proc.returncode == 1 and "--limit" in proc.stderr and proc.stdout == ""


def test_an_unchanged_listing_is_its_snapshot_and_any_change_is_seen(repo: Path) -> None:
    """Nothing changed since the same listing was made: its text is read back whole (a marked
    snapshot proves it); a new tag, a note or a stage change makes the listing anew."""
    import sqlite3

    from gitreg.listing import cache

    expected = reference(repo)
    assert listed(repo, "--limit", "0") == expected
    con = sqlite3.connect(cache_file(repo), isolation_level=None)
    (filters, state), *others = con.execute("SELECT filters, state FROM snapshots").fetchall()
    assert not others and json.loads(filters) == [None, None, None, None]
    marked = expected.replace(b'"policy"', b'"marked"')
    con.execute("UPDATE snapshots SET body = ?, crc = ?", (marked, cache._crc(filters + state, marked)))
    con.close()
    assert listed(repo, "--limit", "0") == marked  # served from the snapshot, no row assembled
    add_note(repo, EXTRA[2], True)
    assert listed(repo, "--limit", "0") == reference(repo)  # a new note: made anew
    assert listed(repo, "--limit", "0") == reference(repo)
    retag(repo, A, "v2025-07-10--00h00")
    assert listed(repo, "--limit", "0") == reference(repo)  # a new tag
    manifest = repo / "models.yaml"
    manifest.write_text(manifest.read_text().replace(A, B))
    assert listed(repo, "--limit", "0") == reference(repo)  # what models.yaml says
    assert len(json.loads(listed(repo, "--limit", "3"))) == 3
    with sqlite3.connect(cache_file(repo)) as con:
        assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 2
