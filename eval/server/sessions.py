"""Web sessions: a signed, expiring cookie (HttpOnly, SameSite=Strict) naming the participant or
the admin, with a CSRF token for every form; and a per-address throttle on failed logins."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from eval.server.tokens import secret_file

COOKIE = "kit_session"
LIFETIME = 8 * 3600
FAILED_LOGINS = 10          # per address ...
FAILED_WINDOW = 300         # ... within this many seconds, then 429 until they age out


def session_key(server_dir: Path) -> bytes:
    """The signing key, shared by every server process of this competition (0600 file)."""
    return bytes.fromhex(secret_file(server_dir / "session-key", lambda: secrets.token_hex(32)))


def _sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def make_cookie(key: bytes, kind: str, subject: int | None, token_hash: str) -> str:
    """A cookie value for a participant (``subject`` = their id) or the admin."""
    payload = base64.urlsafe_b64encode(json.dumps({
        "kind": kind, "id": subject, "token": token_hash[:16], "csrf": secrets.token_urlsafe(16),
        "exp": int(time.time()) + LIFETIME}).encode())
    return f"{payload.decode()}.{_sign(key, payload)}"


def read_cookie(key: bytes, value: str | None) -> dict | None:
    """The session in a cookie value, or None when missing, forged or expired."""
    if not value or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(_sign(key, payload.encode()), signature):
        return None
    try:
        session = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    return session if session.get("exp", 0) > time.time() else None


class LoginThrottle:
    """Counts failed logins per address in a sliding window."""

    def __init__(self, limit: int = FAILED_LOGINS, window: float = FAILED_WINDOW):
        self.limit, self.window = limit, window
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, address: str) -> deque:
        failures = self._failures[address]
        while failures and failures[0] < time.monotonic() - self.window:
            failures.popleft()
        return failures

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address)) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            self._recent(address).append(time.monotonic())
