"""Request bodies read so that records reach the one reader as they were sent.

JSON parsers keep the last of a repeated key; the record reader counts a repeated pain at its
worst and sets the record aside. So a body is parsed keeping repeated keys (`Pairs`), and each
record is written back as one JSON line, repeats and all, for `progressor.reading.read_log`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from progressor.serve.problems import ProblemError


class Pairs(dict[str, Any]):
    """A JSON object; `pairs` holds its keys and values in order when a key repeats."""

    pairs: list[tuple[str, Any]] | None = None

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> Pairs:
        found = cls(pairs)
        if len(found) != len(pairs):
            found.pairs = pairs
        return found


class PairsRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = json.loads(await self.body(), object_pairs_hook=Pairs.of)
            except RecursionError:
                detail = "the JSON body is nested too deeply"
                raise ProblemError(400, "bad-json", "Bad JSON", detail) from None
        return self._json


class PairsRoute(APIRoute):
    """A route whose JSON body keeps repeated keys (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(PairsRequest(request.scope, request.receive))

        return route


def record_line(value: Any) -> str:
    """One record as one line of JSON, with every repeated key it was sent with."""
    if isinstance(value, Pairs) and value.pairs is not None:
        items = (f"{json.dumps(k)}:{record_line(v)}" for k, v in value.pairs)
        return "{" + ",".join(items) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{record_line(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(record_line, value)) + "]"
    return json.dumps(value)
