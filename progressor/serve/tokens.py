"""Bearer tokens: created once, shown once, kept as SHA-256 hashes with role and name.

The tokens file is JSON, written atomically (a new file renamed over the old) with 0600
permissions. It holds no token, only its hash: a copy of the file lets nobody call the service.
This module needs no web framework: `progressor token create` works without the serve extra.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from progressor.errors import ProgressorError

Role = Literal["service", "clinician", "readonly"]
ROLES: tuple[Role, ...] = get_args(Role)
PREFIX = "prg_"  # (makes a leaked token easy to spot in a secret scanner)


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: Role
    sha256: str
    created: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens(path: Path) -> list[TokenEntry]:
    """The entries of a tokens file; a missing file has none; a broken one is an error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [TokenEntry(**entry) for entry in data["tokens"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProgressorError(f"{path}: not a tokens file ({exc})") from None


def create_token(path: Path, role: str, name: str | None = None) -> tuple[str, TokenEntry]:
    """A new token of `role`, added to the file at `path`: (the token, its entry)."""
    if role not in ROLES:
        raise ProgressorError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    entries = read_tokens(path)
    name = name or f"{role}-{len(entries) + 1}"
    if any(e.name == name for e in entries):
        raise ProgressorError(f"{path}: a token named {name!r} exists already; choose --name")
    token = PREFIX + secrets.token_urlsafe(32)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = TokenEntry(name=name, role=role, sha256=digest(token), created=created)
    _write(path, [*entries, entry])
    return token, entry


def _write(path: Path, entries: list[TokenEntry]) -> None:
    text = json.dumps({"tokens": [vars(e) for e in entries]}, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, path)  # (atomic: a reader sees the old file or the new one)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


class TokenFile:
    """The tokens of a file, read again when the file changes (a token created or removed
    while the service runs counts from the next request)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, TokenEntry] = {}

    def find(self, token: str) -> TokenEntry | None:
        self._refresh()
        return self._by_hash.get(digest(token))

    def find_hash(self, sha256: str) -> TokenEntry | None:
        """The entry of the token with this hash (a page session names its token so)."""
        self._refresh()
        return self._by_hash.get(sha256)

    def _refresh(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._by_hash = {e.sha256: e for e in read_tokens(self.path)}
            self._stamp = stamp
