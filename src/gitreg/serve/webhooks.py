"""Who may wake the agent through ``POST /hooks/git``, and how often.

A delivery is accepted with GitHub's ``X-Hub-Signature-256`` (HMAC-SHA256 of the body), GitLab's
``X-Gitlab-Token`` (the secret itself), or the Standard Webhooks scheme (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
timestamps older or newer than ``TOLERANCE_SECONDS`` refused). A delivery id seen before
(``X-GitHub-Delivery``, ``X-Gitlab-Event-UUID`` or ``webhook-id``) wakes nothing: a replay is
answered but ignored. The agent in turn coalesces hook-triggered syncs (see Agent.wake)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

TOLERANCE_SECONDS = 300  # Standard Webhooks: a timestamp further from now is refused
REMEMBERED = 10_000  # delivery ids kept to recognise a replay (oldest forgotten first)
ID_HEADERS = ("x-github-delivery", "x-gitlab-event-uuid", "webhook-id")


def signed(headers: Mapping[str, str], body: bytes, secret: str, now: float | None = None) -> bool:
    """True if the delivery carries a valid signature (or token) for ``secret``."""
    sig = headers.get("x-hub-signature-256")
    if sig:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(sig.encode(), expected.encode())
    token = headers.get("x-gitlab-token")
    if token:
        return hmac.compare_digest(token.encode(), secret.encode())
    if headers.get("webhook-signature"):
        return standard_signed(headers, body, secret, time.time() if now is None else now)
    return False


def standard_signed(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> bool:
    """The Standard Webhooks scheme (standardwebhooks.com): any of the space-separated ``v1,``
    signatures matches, and the timestamp is within the tolerance."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE_SECONDS:
        return False
    key = secret.encode()
    if secret.startswith("whsec_"):  # the scheme's secrets: base64 key bytes after the prefix
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            return False
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    for candidate in headers.get("webhook-signature", "").split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


def delivery_id(headers: Mapping[str, str]) -> str | None:
    for name in ID_HEADERS:
        value = headers.get(name)
        if value:
            return f"{name}:{value[:200]}"
    return None


class Deliveries:
    """The delivery ids seen lately: ``first(id)`` is True once per id."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def first(self, delivery: str) -> bool:
        with self._lock:
            if delivery in self._seen:
                self._seen.move_to_end(delivery)
                return False
            self._seen[delivery] = None
            while len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
            return True
