"""S3 specifics of the DVC store: one streamed GET per object, uploads in small parts."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from contextlib import suppress
from typing import Any

UPLOAD_JOBS = 4  # S3 multipart parts in flight per upload (see multipart_remote)
UPLOAD_PART_BYTES = 8 << 20  # S3 multipart part size (s3fs's default is 50 MiB)


def open_object(odb: Any, path: str) -> Any:
    """A binary reader of one object of a DVC object database: a plain file for a local
    folder, one streamed GET for S3, the remote filesystem's own reader otherwise."""
    fs = odb.fs
    if fs.protocol == "local":
        return open(path, "rb")  # the caller closes it
    inner = getattr(fs, "fs", None)
    if fs.protocol == "s3" and hasattr(inner, "_call_s3") and hasattr(inner, "loop"):
        return S3Stream(inner, path)
    return fs.open(path, "rb")


class S3Stream:
    """One S3 object as a single streamed GET through DVC's s3fs client, read ahead by one
    chunk (the network and the hash/write overlap; memory stays a few chunks). A connection
    dropped mid-way is resumed with a ranged GET from the byte reached.

    s3fs's own reader fetches ranged blocks of 50 MiB each; one GET is what S3 serves
    fastest, and what a server that materializes the object per request (moto) can serve."""

    RETRIES = 5

    def __init__(self, s3: Any, path: str) -> None:
        self._s3 = s3
        self._bucket, self._key, self._version = s3.split_path(path)
        self._body: Any = None
        self._received = 0
        self._size: int | None = None  # from the first response
        self._ahead: Future[bytes] | None = None
        self._run(self._open())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._s3.loop).result()

    async def _open(self) -> None:
        kw: dict[str, Any] = dict(getattr(self._s3, "req_kw", None) or {})
        if self._version:
            kw["VersionId"] = self._version
        if self._received:
            kw["Range"] = f"bytes={self._received}-"
        resp = await self._s3._call_s3("get_object", Bucket=self._bucket, Key=self._key, **kw)
        self._body = resp["Body"]
        if self._size is None and isinstance(resp.get("ContentLength"), int):
            self._size = resp["ContentLength"]

    async def _read(self, n: int) -> bytes:
        from s3fs.core import S3_RETRYABLE_ERRORS

        parts: list[bytes] = []
        got = failures = 0
        while got < n and (self._size is None or self._received < self._size):
            try:
                piece = await self._body.read(n - got)
            except S3_RETRYABLE_ERRORS:
                failures += 1
                if failures > self.RETRIES:
                    raise
                self._body.close()
                await self._open()
                continue
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
            self._received += len(piece)
        return b"".join(parts)

    def read(self, n: int) -> bytes:
        if self._ahead is None:
            self._ahead = asyncio.run_coroutine_threadsafe(self._read(n), self._s3.loop)
        chunk = self._ahead.result()
        self._ahead = asyncio.run_coroutine_threadsafe(self._read(n), self._s3.loop) if chunk else None
        return chunk

    async def _aclose(self) -> None:
        if self._body is not None:
            self._body.close()

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            with suppress(Exception):
                self._ahead.result()
            self._ahead = None
        with suppress(Exception):
            self._run(self._aclose())

    def __enter__(self) -> S3Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def multipart_remote(repo: Any) -> tuple[Any, int] | None:
    """(md5 object database, parts in flight) when the default remote is a plain S3 remote
    that gitreg uploads to in small parts (see ``DvcStore._upload_in_parts``); None for the
    rest (local folders, other clouds, version-aware or worktree remotes), which ``dvc push``
    handles. The remote's ``jobs`` (``dvc remote modify NAME jobs N``) sets the parts in
    flight; UPLOAD_JOBS otherwise (DVC's default, 4 per CPU, with s3fs's 50 MiB parts holds
    hundreds of MiB in memory)."""
    conf = repo.config
    name = conf["core"].get("remote")
    remote = conf["remote"].get(name) if name else None
    if not remote or not str(remote.get("url", "")).startswith("s3://"):
        return None
    if remote.get("version_aware") or remote.get("worktree"):
        return None
    odb = repo.cloud.get_remote_odb(name, "push", hash_name="md5")
    if odb.fs.protocol != "s3" or not hasattr(getattr(odb.fs, "fs", None), "_put_file"):
        return None
    jobs = remote.get("jobs")
    return odb, int(jobs) if jobs else UPLOAD_JOBS
