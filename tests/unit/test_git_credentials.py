"""A token reaches git through a credential helper in git's environment: a real ``git
http-backend`` behind HTTP Basic auth on 127.0.0.1 serves the clone and the fetches, and the
token is in no command line git ran (``GIT_TRACE`` logs every one, the children's too), in no
file of the mirror, and never handed to a credential store the user configured."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitreg.errors import GitError, GitregError
from gitreg.gitrepo import GitAuth, GitRepo
from gitreg.gitrepo.credentials import URL_PASSWORD_ENV, redact, split_url
from gitreg.serve.agent import Agent, AgentConfig

TOKEN = "ghp_s3cr3t-T0ken\\with$shell`chars'"  # what a shell or echo would mangle, on purpose
USER = "x-access-token"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class GitServer:
    """``git http-backend`` as CGI behind Basic auth (user ``x-access-token``, ``token``)."""

    root: Path
    token: str
    logins: list[str | None] = field(default_factory=list)  # each request's Authorization header
    url: str = ""

    def authorized(self, header: str | None) -> bool:
        self.logins.append(header)
        want = "Basic " + base64.b64encode(f"{USER}:{self.token}".encode()).decode()
        return header == want


def _handler(server: GitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._cgi()

        def do_POST(self) -> None:
            self._cgi()

        def log_message(self, *_args: object) -> None:  # quiet
            return

        def _cgi(self) -> None:
            if not server.authorized(self.headers.get("Authorization")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": USER,
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": str(server.root),
            }
            for header, var in (
                ("Git-Protocol", "GIT_PROTOCOL"),
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ):
                if self.headers.get(header):
                    env[var] = self.headers[header]
            proc = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            out = proc.stdout
            sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
            head, _, payload = out.partition(sep)
            status, headers = 200, []
            for line in head.decode().splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """A bare ``models.git`` with one commit and a tag, served over HTTP with a login."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "models.yaml").write_text("models: {}\n")
    _git(work, "add", "models.yaml")
    _git(work, "commit", "-q", "-m", "init")
    _git(work, "tag", "-a", "-m", "first", "v2025-01-01--00h00")
    root = tmp_path / "srv"
    root.mkdir()
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(root / "models.git"))
    server = GitServer(root=root, token=TOKEN)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/models.git"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GIT_TRACE: every command line git runs (its own and its children's: the remote helper,
    the credential helper) is written here."""
    path = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(path))
    return path


def _files_hold(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def _push_commit(server: GitServer, tmp_path: Path, tag: str) -> None:
    work = tmp_path / "pusher"
    if not work.exists():
        _git(tmp_path, "clone", "-q", str(server.root / "models.git"), str(work))
    (work / "models.yaml").write_text(f"models: {{}}\n# {tag}\n")
    _git(work, "commit", "-q", "-am", tag)
    _git(work, "tag", "-a", "-m", tag, tag)
    _git(work, "push", "-q", "origin", "main", tag)


def test_the_server_really_wants_the_token(tmp_path: Path, git_server: GitServer) -> None:
    """Without a token the clone is refused (so the passes below are the token's doing), and
    the error says a login is wanted, in a GitError with a hint."""
    with pytest.raises(GitError) as e:
        GitRepo.mirror(git_server.url, tmp_path / "m.git")
    assert "--git-token-env" in e.value.hint
    assert not (tmp_path / "m.git").exists()
    assert git_server.logins and all(h is None for h in git_server.logins)


def test_clone_and_fetch_with_the_token_only_in_the_environment(
    tmp_path: Path, git_server: GitServer, trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_TOKEN", TOKEN)
    auth = GitAuth("MODELS_TOKEN")
    mirror = GitRepo.mirror(git_server.url, tmp_path / "m.git", auth=auth)
    assert mirror.bare and _git(mirror.root, "tag", "--list") == "v2025-01-01--00h00"
    assert git_server.authorized(git_server.logins[-1])  # the last request carried the token

    _push_commit(git_server, tmp_path, "v2025-01-02--00h00")
    mirror.fetch_mirror(auth=auth)
    assert "v2025-01-02--00h00" in _git(mirror.root, "tag", "--list").split()

    ran = trace.read_text()
    assert "clone" in ran and "fetch" in ran and "git-remote-http" in ran
    assert "credential.http://127.0.0.1" not in ran  # the helper came from the environment …
    assert "password=%s" in ran  # … and git ran it (its command line names the variable)
    assert TOKEN not in ran and "s3cr3t" not in ran
    assert _git(mirror.root, "config", "remote.origin.url") == git_server.url
    assert _files_hold(mirror.root, "s3cr3t") == []


def test_a_credential_store_in_the_users_config_is_not_handed_the_token(
    tmp_path: Path, git_server: GitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "stored-credentials"
    subprocess.run(["git", "config", "--global", "credential.helper", f"store --file={store}"], check=True)
    monkeypatch.setenv("MODELS_TOKEN", TOKEN)
    GitRepo.mirror(git_server.url, tmp_path / "m.git", auth=GitAuth("MODELS_TOKEN"))
    assert not store.exists()
    # the control: a helper that git adds after the user's (no clearing) gets the login stored
    helper = f'!f() {{ test $1 = get || exit 0; echo username={USER}; printf "password=%s\\n" "$T"; }}; f'
    subprocess.run(
        ["git", "-c", f"credential.helper={helper}", "ls-remote", git_server.url],
        check=True, capture_output=True, env=dict(os.environ, T=TOKEN),
    )  # fmt: skip
    assert "s3cr3t" in store.read_text()


def test_a_wrong_or_missing_token_names_the_variable(
    tmp_path: Path, git_server: GitServer, trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_TOKEN", "not-the-token")
    with pytest.raises(GitError) as e:
        GitRepo.mirror(git_server.url, tmp_path / "m.git", auth=GitAuth("MODELS_TOKEN"))
    assert "$MODELS_TOKEN was refused" in e.value.hint
    assert "not-the-token" not in str(e.value) and "not-the-token" not in trace.read_text()
    monkeypatch.delenv("MODELS_TOKEN")
    with pytest.raises(GitError) as e:
        GitRepo.mirror(git_server.url, tmp_path / "m.git", auth=GitAuth("MODELS_TOKEN"))
    assert "$MODELS_TOKEN" in e.value.hint
    assert not (tmp_path / "m.git").exists()


def test_a_password_in_the_url_works_but_is_never_written_or_run(
    tmp_path: Path, git_server: GitServer, trace: Path
) -> None:
    from urllib.parse import quote

    url = git_server.url.replace("http://", f"http://{USER}:{quote(TOKEN, safe='')}@")
    mirror = GitRepo.mirror(url, tmp_path / "m.git")
    assert _git(mirror.root, "config", "remote.origin.url") == git_server.url
    _push_commit(git_server, tmp_path, "v2025-01-02--00h00")
    # the URL is not in the mirror any more: a fetch given the same URL's login still works
    mirror.fetch_mirror(auth=split_url(url)[1])
    assert "v2025-01-02--00h00" in _git(mirror.root, "tag", "--list").split()
    assert "s3cr3t" not in trace.read_text()
    assert _files_hold(mirror.root, "s3cr3t") == []
    assert URL_PASSWORD_ENV not in os.environ  # given to git's environment only
    assert "s3cr3t" not in redact(url) and redact(url).startswith(f"http://{USER}:***@127.0.0.1")


def test_an_old_mirror_with_the_token_in_its_config_is_cleaned_on_fetch(
    tmp_path: Path, git_server: GitServer, trace: Path
) -> None:
    from urllib.parse import quote

    url = git_server.url.replace("http://", f"http://{USER}:{quote(TOKEN, safe='')}@")
    old = tmp_path / "old.git"
    subprocess.run(
        ["git", "clone", "-q", "--mirror", url, str(old)], check=True, env=dict(os.environ, GIT_TRACE="0")
    )
    assert _files_hold(old, "s3cr3t")  # what git itself does with such a URL
    _push_commit(git_server, tmp_path, "v2025-01-02--00h00")
    GitRepo(old).fetch_mirror()
    assert _files_hold(old, "s3cr3t") == []
    assert "v2025-01-02--00h00" in _git(old, "tag", "--list").split()
    assert "s3cr3t" not in trace.read_text()


def test_the_agent_follows_a_remote_that_needs_a_login(
    tmp_path: Path, git_server: GitServer, trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    agent = Agent(AgentConfig(repo=git_server.url, cache=tmp_path / "cache", git_token_env="GIT_TOKEN"))
    agent.sync_once()
    assert agent.state.commit == _git(git_server.root / "models.git", "rev-parse", "main")
    _push_commit(git_server, tmp_path, "v2025-01-02--00h00")
    agent.sync_once()
    assert agent.state.commit == _git(git_server.root / "models.git", "rev-parse", "main")
    assert "s3cr3t" not in trace.read_text()
    assert _files_hold(tmp_path / "cache", "s3cr3t") == []


@pytest.mark.parametrize(
    ("url", "token_env", "clean", "password"),
    [
        ("https://github.com/acme/models.git", "T", "https://github.com/acme/models.git", None),
        ("https://u:p%40ss@github.com/a.git", None, "https://github.com/a.git", "p@ss"),
        ("https://oauth2@gitlab.com/a.git", "T", "https://oauth2@gitlab.com/a.git", None),
        ("git@github.com:acme/models.git", None, "git@github.com:acme/models.git", None),
        ("/srv/models.git", None, "/srv/models.git", None),
    ],
)
def test_split_url(url: str, token_env: str | None, clean: str, password: str | None) -> None:
    got, auth = split_url(url, token_env)
    assert got == clean
    assert (auth.password if auth else None) == password
    if "oauth2" in url:
        assert auth is not None and auth.username == "oauth2"


def test_bad_names_and_a_token_given_twice_are_refused() -> None:
    with pytest.raises(GitregError, match="not an environment variable name"):
        GitAuth("X; rm -rf /")
    with pytest.raises(GitregError, match="username"):
        GitAuth("T", username="a'b")
    with pytest.raises(GitregError, match="password in it"):
        split_url("https://u:p@github.com/a.git", "T")
    # a config the environment already carries is kept: gitreg's entries come after it
    env = GitAuth("T").git_env("https://h/x.git", {"GIT_CONFIG_COUNT": "1"})
    assert env["GIT_CONFIG_COUNT"] == "3" and env["GIT_CONFIG_KEY_1"] == "credential.https://h.helper"
    assert GitAuth("T").git_env("git@h:x.git", {}) == {}


def test_gitreg_serve_refuses_a_token_given_twice_or_a_variable_unset(tmp_path: Path) -> None:
    import sys

    gitreg = Path(sys.executable).parent / "gitreg"
    env = dict(os.environ, T="tok")
    both = subprocess.run(
        [str(gitreg), "serve", "--repo", "https://u:p@h.invalid/x.git", "--git-token-env", "T",
         "--cache", str(tmp_path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert both.returncode == 1 and "--git-token-env names a token" in both.stderr
    assert len(both.stderr.strip().splitlines()) == 1
    unset = subprocess.run(
        [str(gitreg), "serve", "--repo", "https://h.invalid/x.git", "--git-token-env", "NOT_SET_HERE",
         "--cache", str(tmp_path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert unset.returncode == 1 and "NOT_SET_HERE is empty or unset" in unset.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was cloned or created
