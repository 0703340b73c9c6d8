"""Bounds on every request, and the access log: plain ASGI middleware around the app.

`Limits` answers 413 for a body over `max_body` bytes (by its Content-Length, or as it
streams in) and 503 when the answer takes longer than `timeout_s`; it writes one JSON line per
request to the `progressor.serve.access` logger: time, method, path (never the query), status,
duration and the token's name and role. Never a body: bodies hold patient notes and pains.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from progressor.serve.problems import ProblemError, response

access_log = logging.getLogger("progressor.serve.access")


def too_large(max_body: int) -> ProblemError:
    return ProblemError(413, "too-large", "Content too large", f"the body is over {max_body} bytes")


class Limits:
    def __init__(self, app: ASGIApp, max_body: int, timeout_s: float) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        exchange = _Exchange(send, self.max_body)
        try:
            await self._bounded(scope, receive, exchange)
        finally:
            _log_access(scope, exchange.status, time.perf_counter() - started)

    async def _bounded(self, scope: Scope, receive: Receive, exchange: _Exchange) -> None:
        problem: ProblemError | None = None
        if _declared_length(scope) > self.max_body:
            problem = too_large(self.max_body)
        else:
            try:  # (asyncio.timeout cancels this task: no task of its own per request)
                async with asyncio.timeout(self.timeout_s):
                    await self.app(scope, exchange.counted(receive), exchange.send)
            except TimeoutError:
                detail = f"no answer within {self.timeout_s:g} s; try again, or send fewer records"
                problem = ProblemError(503, "timeout", "Request timed out", detail)
            if exchange.over:  # (whatever the app made of the cut body, the answer is 413)
                problem = too_large(self.max_body)
        if problem is not None and not exchange.started:
            await response(problem)(scope, receive, exchange.answer)


class _Exchange:
    """One request's answer: its status, and whether its body went over the limit (then
    the app's answer is dropped for a 413)."""

    def __init__(self, reply: Send, max_body: int) -> None:
        self.reply = reply
        self.max_body = max_body
        self.status = 500
        self.started = False
        self.over = False
        self.seen = 0

    async def send(self, message: Message) -> None:
        if self.over:
            return
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
        await self.reply(message)

    async def answer(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
        await self.reply(message)

    def counted(self, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            self.seen += len(message.get("body", b""))
            if self.seen > self.max_body:
                self.over = True
                raise too_large(self.max_body)
            return message

        return counted


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    state = scope.get("state") or {}
    entry = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "token": state.get("token_name"),
        "role": state.get("token_role"),
    }
    access_log.info(json.dumps(entry))
