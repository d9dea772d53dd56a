"""The harness in gitreg.testing: cheap to import, polls with a deadline, bounded load on loopback
only, an environment without the user's git/DVC/AWS settings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitreg.testing.env import clean_environ
from gitreg.testing.load import Load
from gitreg.testing.net import WaitTimeout, free_port, wait_until
from gitreg.testing.server import start_process, stop_process

LOADED = """
import json, sys
import gitreg.testing, gitreg.testing.server, gitreg.testing.load, gitreg.testing.s3
import gitreg.testing.bundles, gitreg.testing.payloads, gitreg.testing.lifecycle, gitreg.testing.repos
print(json.dumps(sorted(m for m in ("torch", "boto3", "httpx", "dvc", "moto") if m in sys.modules)))
"""


def test_importing_the_harness_imports_nothing_heavy() -> None:
    out = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_gitreg_list_imports_neither_the_harness_nor_the_demo(repo_dir: Path) -> None:
    probe = (
        "import sys; sys.argv = ['gitreg', 'list', '--json']\nfrom gitreg.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('LOADED ' + ' '.join(m for m in sys.modules if m.startswith(('gitreg.testing', "
        "'gitreg.cli.demo'))) + '\\n')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo_dir, capture_output=True, text=True, check=True
    )
    loaded = [line for line in proc.stderr.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED "], proc.stderr


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([None, 0, ValueError("not yet"), {"ok": 1}])

    def check() -> object:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(check, 10, every=0.001) == {"ok": 1}


def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match="the moon") as info:
        wait_until(lambda: False, 0.2, what="the moon", every=0.01)
    assert info.value.what == "the moon"
    assert 0.2 <= time.monotonic() - start < 10


def test_wait_until_gives_up_at_once_when_a_watched_process_exits(tmp_path: Path) -> None:
    class Exited:
        def alive(self) -> bool:
            return False

        def describe(self) -> str:
            return "the server died"

    start = time.monotonic()
    with pytest.raises(WaitTimeout, match="the server died"):
        wait_until(lambda: False, 60, what="ready", watch=[Exited()])
    assert time.monotonic() - start < 5


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_stop_process_stops_the_whole_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    child = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    proc = start_process([sys.executable, "-c", child], tmp_path / "log")
    grandchild = wait_until(
        lambda: pid_file.exists() and int(pid_file.read_text() or 0), 60, what="the grandchild"
    )
    assert running(grandchild)
    assert stop_process(proc, graceful=5) is not None
    assert proc.poll() is not None
    wait_until(lambda: not running(grandchild), 30, what="the grandchild to be gone")


def test_clean_environ_drops_the_users_git_dvc_and_aws_settings(tmp_path: Path) -> None:
    base = {
        "PATH": "/bin",
        "GIT_DIR": "/elsewhere",
        "DVC_REMOTE": "x",
        "AWS_PROFILE": "prod",
        "COLUMNS": "80",
    }
    env = clean_environ(tmp_path / "home", base)
    assert env["PATH"] == "/bin"
    assert (
        "GIT_DIR" not in env and "DVC_REMOTE" not in env and "AWS_PROFILE" not in env and "COLUMNS" not in env
    )
    assert env["HOME"] == str(tmp_path / "home") and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert "name = Test User" in (tmp_path / "home" / ".gitconfig").read_text()


@pytest.fixture
def echo_server() -> Iterator[str]:
    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"version": "v1", "outputs": [[0.0]]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_load_stops_by_itself_after_max_requests(echo_server: str) -> None:
    with Load(echo_server, clients=3, max_requests=50) as load:
        wait_until(load.done, 60, what="the load to stop")
    assert load.count() == 50
    assert load.failed() == 0 and load.by_version() == {"v1": 50} and load.last_versions() == {"v1"}


def test_load_stops_by_itself_after_max_seconds(echo_server: str) -> None:
    with Load(echo_server, clients=2, max_seconds=0.3) as load:
        wait_until(load.done, 60, what="the load to stop")
    assert load.count() > 0
    assert all(s.start - load.all()[0].start < 30 for s in load.all())


@pytest.mark.parametrize("url", ["http://example.com:80", "https://127.0.0.1:8443", "http://10.0.0.1:80"])
def test_load_only_targets_loopback(url: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        Load(url)
