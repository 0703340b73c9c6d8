"""A real `progressor serve` app on 127.0.0.1 in a thread, for the tests of its areas."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from progressor.serve.app import create_app
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import ROLES, create_token


@dataclass
class Served:
    url: str
    tokens: dict[str, str]

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def get(self, path: str, role: str | None = "service") -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers(role), timeout=30)

    def post(self, path: str, body: Any, role: str | None = "service", **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self.headers(role), timeout=30, **kw)


@contextmanager
def serving(directory: Path, **settings: Any) -> Iterator[Served]:
    """The service for `settings` (a token of each role in `directory`) until the block ends."""
    tokens = directory / "tokens.json"
    secrets = {role: create_token(tokens, role)[0] for role in ROLES}
    app = create_app(ServeSettings(tokens=tokens, **settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", secrets)
    finally:
        server.should_exit = True
        thread.join(10)
