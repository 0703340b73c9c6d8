"""The clinician pages' sessions: a signed cookie naming a token by its hash, and its CSRF token.

The cookie never holds the token: it holds the token's SHA-256 (as the tokens file does), a
random nonce and when it was issued, signed with HMAC-SHA256. The token is looked up in the
tokens file on every request, so a token removed from the file ends its sessions at once.
The signing key lives beside the tokens file (`<tokens>.session-key`, 0600), made on first
use: every worker process, and the next start, accept the same cookies; deleting the key
ends every session. The CSRF token of a session is an HMAC of its nonce: one per session,
checked on every form post.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "progressor_session"
#: How long a session lasts: a working day; then the clinician pastes their token again.
LIFETIME_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    sha256: str  # the token's hash, as in the tokens file
    nonce: str
    issued: int  # seconds since the epoch


def key_path(tokens: Path) -> Path:
    return tokens.with_name(tokens.name + ".session-key")


def signing_key(tokens: Path) -> bytes:
    """The key beside the tokens file, made when missing (atomically: two workers starting
    at once end with the same key)."""
    path = key_path(tokens)
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    try:
        os.link(scratch, path)  # (fails when another process made it first: theirs wins)
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def new_cookie(key: bytes, sha256: str) -> str:
    """A cookie value for a session of the token whose hash is `sha256`."""
    session = {"sha256": sha256, "nonce": secrets.token_hex(16), "issued": int(time.time())}
    payload = base64.urlsafe_b64encode(json.dumps(session).encode()).decode()
    return f"{payload}.{_sign(key, payload.encode())}"


def read_cookie(key: bytes, value: str | None) -> Session | None:
    """The session of a cookie, or None when it is missing, forged, broken or expired."""
    if not value:
        return None
    payload, _, signature = value.partition(".")
    if not hmac.compare_digest(_sign(key, payload.encode()), signature):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload))
        session = Session(str(data["sha256"]), str(data["nonce"]), int(data["issued"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= time.time() - session.issued < LIFETIME_S:
        return None
    return session


def csrf_token(key: bytes, session: Session) -> str:
    return _sign(key, f"csrf:{session.nonce}".encode())


def csrf_ok(key: bytes, session: Session, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(csrf_token(key, session), sent)
