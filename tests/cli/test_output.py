"""Text is data: the output sink shows every string from the repository as plain text.

Unit tests of the escaping, then a matrix: for each hostile string, a real registry whose
metadata (algo, framework, env_id, data_version, code_commit, description, metric names,
hyperparameter keys and values), tag message and author name hold it, and every read command in
table, JSON and HTML form — no traceback, exit 0, no raw control character on stdout, the text
visible. `status --server` reads a real HTTP server that answers hostile JSON."""

from __future__ import annotations

import html
import http.server
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from gitreg.cli.output import CELL_LIMIT, Output, Table, clip, safe_json, visible
from gitreg.testing.cli import run_cli

HOSTILE = {
    "close-tag": "[/]",
    "link": "[link=file:///etc/passwd]x[/link]",
    "csi": "\x1b[2J",
    "osc-title": "\x1b]0;pwned\x07",
    "cr": "ok\rFAKE",
    "newline": "\n error: fake",
    "c1-csi": "\x9b31m",
    "bidi": "abc\u202edcba",
    "long": "L" * 1000,
    "unicode": "модель 模型 🚀 é",
}
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


# -- the escaping, unit ------------------------------------------------------------------------------
def test_visible_shows_control_characters_as_escapes():
    assert visible("\x1b[2J") == "\\x1b[2J"
    assert visible("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert visible("a\rb\tc\x7f\x9b") == "a\\rb\\tc\\x7f\\x9b"
    assert visible("one\ntwo") == "one⏎two"
    assert visible("abc\u202edcba") == "abc\\u202edcba"
    assert visible("\ud800") == "\\ud800"
    assert visible("[/] модель 🚀 \u200d") == "[/] модель 🚀 \u200d"  # markup is not a terminal's business
    assert visible(42) == "42"


def test_clip_marks_what_it_cut():
    assert clip("x" * 10, 20) == "x" * 10
    assert clip("x" * 250, 200) == "x" * 200 + "… (+50 chars)"


def test_safe_json_keeps_values_and_escapes_terminal_active_characters():
    data = {"a": "\x9b31m", "b": "abc\u202edcba", "c": "\x7f", "d": "модель", "e": "\x1b[2J"}
    raw = safe_json(json.dumps(data, ensure_ascii=False).encode())
    assert json.loads(raw) == data
    assert not RAW_CONTROL.search(raw.decode())


def capture(fn: Any) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        fn()
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_sink_prints_hostile_text_literally(name: str):
    s = HOSTILE[name]
    out = Output()
    t = Table("VALUE")
    t.row([("styled ", "bold"), s])

    def write() -> None:
        out.line("value: ", (s, "bold"), " ", s)
        out.table(t)

    text = capture(write)
    assert not RAW_CONTROL.search(text)
    assert visible(s)[:CELL_LIMIT] in text
    if name == "long":
        assert f"… (+{1000 + len('styled ') - CELL_LIMIT} chars)" in text
    assert len(text.strip().splitlines()) == 3  # one line, a header, one row: no injected line


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_json_mode_writes_the_data_untouched(name: str):
    s = HOSTILE[name]
    text = capture(lambda: Output(json=True).emit({"k": s, s: [s]}, lambda o, r: None))
    assert json.loads(text) == {"k": s, s: [s]}
    assert not RAW_CONTROL.search(text)


def test_the_view_is_called_only_for_people():
    calls: list[object] = []
    text = capture(lambda: Output(json=True).emit([1, 2], lambda o, r: calls.append(r)))
    assert calls == [] and json.loads(text) == [1, 2]
    Output().emit([1, 2], lambda o, r: calls.append(r))
    assert calls == [[1, 2]]


# -- the matrix: hostile strings x commands x table/JSON/HTML -------------------------------------------
def hostile_meta(s: str, n: int, parent: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "algo": s,
        "framework": s,
        "created_at": "2025-07-01T00:00:00+00:00",
        "metrics": {s: float(n), "reward": 10.0 * n},
        "hyperparameters": {s: f"{s}-{n}", "lr": 0.01 * n},
        "env_id": s,
        "data_version": s,
        "code_commit": s,
        "description": s,
    }
    if parent:
        meta["parent"] = parent
    return meta


def strings_in(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for k, v in data.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(data, list):
        for v in data:
            yield from strings_in(v)


def assert_clean(proc: Any, what: str) -> None:
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, f"{what}: {proc.stderr}"
    for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        bad = RAW_CONTROL.search(text)
        assert bad is None, f"{what}: raw {bad.group()!r} on {stream}"
    assert not re.search(r"^\s*error: fake", proc.stdout + proc.stderr, re.M), f"{what}: an injected line"


@pytest.fixture
def hostile_repo(request: Any, registry: Any, make_bundle: Any, clock: Any, monkeypatch: Any) -> Any:
    s = HOSTILE[request.param]
    # an author name longer than the tag block's 1,000-character fields is refused at register
    # (a version whose summary would not list is never made): the long case keeps 900 of them
    monkeypatch.setenv("GIT_COMMITTER_NAME", f"Eve{s[:900]}x")
    monkeypatch.setenv("GIT_AUTHOR_NAME", f"Eve{s[:900]}x")
    policy = b"not a real policy: nothing here loads it"
    first = make_bundle(metadata=hostile_meta(s, 1), policy=policy)
    v1 = registry.register(first, "policy", message=s).version
    clock.advance(days=1)
    v2 = registry.register(
        make_bundle(metadata=hostile_meta(s, 2, parent=v1), policy=policy + b"2"), "policy", message=s
    ).version
    registry.promote(v1, "production", direct=True, force=True)
    registry.promote(v2, "staging", direct=True, force=True)
    return s, Path(registry.root), v1, v2


@pytest.mark.slow
@pytest.mark.parametrize("hostile_repo", sorted(HOSTILE), indirect=True)
def test_hostile_text_through_every_read_command(hostile_repo: Any, tmp_path: Path):
    s, root, v1, v2 = hostile_repo
    shown = visible(s)[:100]  # what a person must see (table cells are cut at CELL_LIMIT)
    commands = {
        "list": ["list"],
        "show": ["show", v2],
        "compare": ["compare", v1, v2],
        "history": ["history"],
        "status": ["status"],
        "report": ["report"],
        "lineage": ["lineage", v2],
    }
    env = {"COLUMNS": "4000"}  # the layout is not under test: no column squeezed to fit
    author = None
    for name, args in commands.items():
        proc = run_cli("-C", str(root), *args, "--json", env=env)
        assert_clean(proc, f"{name} --json")
        data = json.loads(proc.stdout)
        if name not in ("history", "status"):  # versions, stages and authors (git normalizes names)
            assert any(s in x for x in strings_in(data)), f"{name} --json lost the value"
        if name == "history":
            author = data[0]["author"].split(" <")[0]

        proc = run_cli("-C", str(root), *args, env=env)
        assert_clean(proc, name)
        if name not in ("history", "status"):
            assert shown in proc.stdout, f"{name}: {shown!r} not shown in\n{proc.stdout}"
        if name == "list" and len(s) > CELL_LIMIT:
            assert f"… (+{len(s) - CELL_LIMIT} chars)" in proc.stdout, proc.stdout
    assert author is not None and "Eve" in author
    for name in ("history", "status", "report"):
        proc = run_cli("-C", str(root), *commands[name], env=env)
        assert visible(author)[:100] in proc.stdout, f"{name}: the author is not shown\n{proc.stdout}"

    # the commands that quote repository data only in passing (validate quotes the metadata;
    # a failed load of the fake policy is exit 1): no markup, escape or injected line either
    for args in (["validate", v2], ["check"], ["doctor"], ["cleanup", "--dry-run"], ["pull", v1]):
        for mode in ((), ("--json",)):
            out = tmp_path / f"pulled{len(mode)}"
            extra = ["--out", str(out)] if args[0] == "pull" else []
            proc = run_cli("-C", str(root), *args, *extra, *mode, env=env)
            assert proc.returncode in (0, 1), f"{args} {mode}: exit {proc.returncode}\n{proc.stderr}"
            assert "Traceback" not in proc.stdout + proc.stderr, f"{args} {mode}: {proc.stderr}"
            for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                bad = RAW_CONTROL.search(text)
                assert bad is None, f"{args} {mode}: raw {bad.group()!r} on {stream}"
            assert not re.search(r"^\s*error: fake", proc.stdout + proc.stderr, re.M), f"{args}: injected"
            if mode:
                json.loads(proc.stdout)  # JSON mode stays JSON

    page_path = tmp_path / "report.html"
    proc = run_cli("-C", str(root), "report", "--html", str(page_path), env=env)
    assert_clean(proc, "report --html")
    page = page_path.read_text()
    assert not RAW_CONTROL.search(page), "a raw control character in the HTML"
    assert html.escape(shown, quote=True) in page
    assert "<script" not in page


# -- status --server: the agent's answers are data too ------------------------------------------------
@pytest.fixture
def hostile_agent() -> Iterator[str]:
    evil = {name: s for name, s in HOSTILE.items() if name != "long"}
    body = json.dumps(
        {
            "status": "degraded",
            "repo": HOSTILE["csi"],
            "branch": HOSTILE["osc-title"],
            "commit": HOSTILE["newline"],
            "last_sync": HOSTILE["cr"],
            "last_attempt": HOSTILE["link"],
            "last_error": "[/] " + HOSTILE["c1-csi"] + HOSTILE["bidi"] + " " + HOSTILE["link"],
            "models": {
                s: {
                    "served": s,
                    "wanted": s + "!",
                    "previous": s,
                    "last_error": s,
                    "canary": {"wanted": s, "served": s, "traffic": 10},
                }
                for s in evil.values()
            },
        }
    ).encode()
    yield from answering(body)


def answering(body: bytes) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers every GET with ``body`` (JSON)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def foreign_agent() -> Iterator[str]:
    """Something that is not a gitreg agent (or a hostile one): wrong types where /health has
    strings, and markup and escapes in the values."""
    body = json.dumps(
        {"status": HOSTILE["link"], "repo": HOSTILE["csi"], "branch": 7, "models": {"odd": 42}}
    ).encode()
    yield from answering(body)


def test_status_server_refuses_an_answer_that_is_not_a_health_report(foreign_agent: str, tmp_path: Path):
    for args in ((), ("--json",)):
        proc = run_cli("-C", str(tmp_path), "status", "--server", foreign_agent, *args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stderr.startswith("error: ") and "is not a gitreg /health answer" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert RAW_CONTROL.search(proc.stdout + proc.stderr) is None and proc.stdout == ""


def test_status_server_shows_the_agents_answers_as_text(hostile_agent: str, tmp_path: Path):
    proc = run_cli("-C", str(tmp_path), "status", "--server", hostile_agent, env={"COLUMNS": "4000"})
    assert_clean(proc, "status --server")
    for s in HOSTILE.values():
        if s != HOSTILE["long"]:
            assert visible(s) in proc.stdout, f"{s!r} not shown\n{proc.stdout}"
    assert "[link=file:///etc/passwd]x[/link]" in proc.stdout  # shown, not made a link

    proc = run_cli("-C", str(tmp_path), "status", "--server", hostile_agent, "--json")
    assert_clean(proc, "status --server --json")
    assert json.loads(proc.stdout)["repo"] == HOSTILE["csi"]
