"""The clinician pages' session cookies: signed, expiring, never the token, one CSRF token each."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from progressor.serve.pages import sessions
from progressor.serve.tokens import create_token


def test_a_cookie_names_the_token_by_its_hash_and_reads_back(tmp_path: Path) -> None:
    token, entry = create_token(tmp_path / "tokens.json", "clinician", "dr-lee")
    key = sessions.signing_key(tmp_path / "tokens.json")
    cookie = sessions.new_cookie(key, entry.sha256)
    assert token not in cookie
    session = sessions.read_cookie(key, cookie)
    assert session is not None and session.sha256 == entry.sha256


def test_a_forged_broken_or_foreign_cookie_is_no_session(tmp_path: Path) -> None:
    key = sessions.signing_key(tmp_path / "tokens.json")
    cookie = sessions.new_cookie(key, "ab" * 32)
    payload, _, signature = cookie.partition(".")
    assert sessions.read_cookie(key, f"{payload}.{'0' * len(signature)}") is None
    assert sessions.read_cookie(key, payload) is None
    assert sessions.read_cookie(key, "") is None
    assert sessions.read_cookie(b"another key", cookie) is None


def test_a_session_ends_after_its_lifetime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = sessions.signing_key(tmp_path / "tokens.json")
    cookie = sessions.new_cookie(key, "ab" * 32)
    later = time.time() + sessions.LIFETIME_S + 1
    monkeypatch.setattr(sessions.time, "time", lambda: later)
    assert sessions.read_cookie(key, cookie) is None


def test_the_csrf_token_belongs_to_its_session(tmp_path: Path) -> None:
    key = sessions.signing_key(tmp_path / "tokens.json")
    one = sessions.read_cookie(key, sessions.new_cookie(key, "ab" * 32))
    other = sessions.read_cookie(key, sessions.new_cookie(key, "ab" * 32))
    assert one is not None and other is not None
    assert sessions.csrf_ok(key, one, sessions.csrf_token(key, one))
    assert not sessions.csrf_ok(key, one, sessions.csrf_token(key, other))
    assert not sessions.csrf_ok(key, one, None)


def test_the_signing_key_is_made_once_beside_the_tokens_private(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    key = sessions.signing_key(tokens)
    path = sessions.key_path(tokens)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sessions.signing_key(tokens) == key and len(key) == 32
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # (no scratch file left)
