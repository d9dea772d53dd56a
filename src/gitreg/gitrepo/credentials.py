"""How a token reaches git over HTTP(S): never on a command line, never in a config file.

git is handed an environment-only configuration (``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/
``GIT_CONFIG_VALUE_<n>``, git 2.31+) naming a credential helper for the remote's host. The
helper is a shell snippet that holds the *name* of an environment variable, not its value:
git runs it when the server asks for credentials (``sh -c '<snippet> "$@"' get``) and it
prints ``username=…`` and ``password=$NAME`` with shell builtins, so the token is in no argv
(``ps``), in no file, and in no URL that git writes into ``config``. Before it, an empty
``credential.<host>.helper`` clears the helpers of the user's own config for that host, so a
``credential.helper=store`` there is never handed the token to save.

A URL with a password in it (``https://user:token@host/…``) still works: the password is taken
out of the URL (the remote URL git keeps has no userinfo) and given to the helper in the same
way, through a variable set only in git's environment. Pure: no git runs here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from gitreg.errors import GitError, GitregError

DEFAULT_USERNAME = "x-access-token"  # GitHub's name for token auth; GitLab and Gitea take any name
URL_PASSWORD_ENV = "GITREG_GIT_URL_PASSWORD"  # set only in git's environment, from the URL's password
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_USERNAME = re.compile(r"[A-Za-z0-9._~+@-]+\Z")  # nothing a shell's single quotes would mind


@dataclass(frozen=True)
class GitAuth:
    """A token for git over HTTP(S): the environment variable ``token_env`` holds it (read by
    git's credential helper when the server asks), sent as ``username``. ``password``: the
    token itself, when it came inside a URL; it is put under ``token_env`` in git's
    environment only (never in this process's ``os.environ``)."""

    token_env: str
    username: str = DEFAULT_USERNAME
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _ENV_NAME.match(self.token_env):
            raise GitregError(
                f"{self.token_env!r} is not an environment variable name",
                "name a variable of letters, digits and _ (e.g. GIT_TOKEN)",
            )
        if not _USERNAME.match(self.username):
            raise GitregError(
                f"the git username {self.username!r} has characters gitreg does not pass to git",
                "use letters, digits and . _ ~ + @ -",
            )

    def git_env(self, url: str, base: Mapping[str, str]) -> dict[str, str]:
        """The variables to add to ``base`` (git's environment) so that git answers the server
        at ``url``'s host with this token; {} for a URL that is not HTTP(S)."""
        scope = _scope(url)
        if scope is None:
            return {}
        try:
            n = int(base.get("GIT_CONFIG_COUNT", "0"))
        except ValueError:
            n = 0
        helper = (
            '!f() { test "$1" = get || exit 0; '
            f'test -n "${{{self.token_env}}}" || exit 0; '
            f"echo 'username={self.username}'; "
            f"printf 'password=%s\\n' \"${{{self.token_env}}}\"; }}; f"
        )
        env = {
            f"GIT_CONFIG_KEY_{n}": f"credential.{scope}.helper",
            f"GIT_CONFIG_VALUE_{n}": "",  # clears the helpers the user's config names for this host
            f"GIT_CONFIG_KEY_{n + 1}": f"credential.{scope}.helper",
            f"GIT_CONFIG_VALUE_{n + 1}": helper,
            "GIT_CONFIG_COUNT": str(n + 2),
        }
        if self.password is not None:
            env[self.token_env] = self.password
        return env


def split_url(url: str, token_env: str | None = None) -> tuple[str, GitAuth | None]:
    """(``url`` without a password, the :class:`GitAuth` git needs for it): the token in
    ``token_env`` if named, else the URL's own password, else None. A username alone stays in
    the URL (it is no secret); only HTTP(S) URLs are changed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        auth = GitAuth(token_env) if token_env else None
        return url, auth
    user = unquote(parts.username or "") or None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None:
        return url, GitAuth(token_env, user or DEFAULT_USERNAME) if token_env else None
    if token_env:
        raise GitregError(
            "the repository URL has a password in it and a token variable is named too",
            f"drop the password from the URL and keep the token in ${token_env}",
        )
    clean = _with_netloc(parts, _hostport(parts))
    return clean, GitAuth(URL_PASSWORD_ENV, user or DEFAULT_USERNAME, password)


def redact(url: str) -> str:
    """``url`` with any password shown as ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return _with_netloc(parts, f"{parts.username or ''}:***@{_hostport(parts)}")


def has_password(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.password is not None


def _scope(url: str) -> str | None:
    """``scheme://host[:port]``: the credential context git matches the helper against."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{_hostport(parts)}"


def _hostport(parts: SplitResult) -> str:
    return parts.netloc.rpartition("@")[2]


def _with_netloc(parts: SplitResult, netloc: str) -> str:
    return parts._replace(netloc=netloc).geturl()


def login_error(e: GitError, auth: GitAuth | None) -> GitError:
    """A refused login said as such: which variable's token was refused, or that one is needed."""
    said = e.stderr.lower()
    if "authentication failed" in said or "could not read username" in said or " 401" in said:
        if auth is None:
            hint = "the remote asks for a login: give a token (gitreg serve --git-token-env NAME)"
        elif auth.password is not None:
            hint = "the password in the repository URL was refused: check it is current and may read the repo"
        else:
            hint = (
                f"the token in ${auth.token_env} was refused (or is empty): check it is current "
                "and may read the repository"
            )
        return GitError(e.command, e.stderr, hint)
    return e
