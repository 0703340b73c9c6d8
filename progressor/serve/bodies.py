"""Request bodies read so that records reach the one reader as they were sent.

JSON parsers keep the last of a repeated key; the record reader counts a repeated pain at its
worst and sets the record aside. So a body is parsed keeping repeated keys (`Pairs`), and each
record is written back as one JSON line, repeats and all, for `progressor.reading.read_log`.

The compute routes (`RecordsRoute`) skip the rebuilding: their body's top-level object is read
key by key with the C decoder, and each record of its `records` list is handed over as the very
text it was sent as (`RawRecord`), so the reader sees every repeated key in it. A top-level key
given twice is refused as bad JSON (kept last, a second `records` would hide the first's pains);
a body that is not a JSON object, or not JSON, is read as before (and refused the same way).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi.routing
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from progressor.serve.problems import BodyProblem


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
                raise BodyProblem(400, "bad-json", "Bad JSON", detail) from None
            except UnicodeDecodeError as exc:  # (JSON is UTF-8, -16 or -32: json.loads' own)
                detail = f"the JSON body is not text in its encoding: {exc}"
                raise BodyProblem(400, "bad-encoding", "Bad encoding", detail) from None
        return self._json


class PairsRoute(APIRoute):
    """A route whose JSON body keeps repeated keys (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(PairsRequest(request.scope, request.receive))

        return route


class RawRecord(str):
    """A record's JSON text as the body carried it, on one line."""


_DECODE = json.JSONDecoder().raw_decode  # (C: one value from a position, and where it ends)
_SPACE = re.compile(r"[ \t\n\r]*")


class RepeatedKey(json.JSONDecodeError):
    """A top-level key given twice."""


def records_first(text: str) -> dict[str, Any] | None:
    """The top-level object of `text` with its `records` list as RawRecords; None when the
    text is not a JSON object (then the general parse decides); RepeatedKey for a top-level
    key given twice."""
    try:
        return _top_level(text)
    except RepeatedKey:
        raise
    except (ValueError, IndexError, RecursionError):
        return None


def _skip(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]  # (it matches "" too)


def _top_level(text: str) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    at = _skip(text, 0)
    if text[at] != "{":
        return None
    at = _skip(text, at + 1)
    while text[at] != "}":
        if found:
            if text[at] != ",":
                return None
            at = _skip(text, at + 1)
        key, end = _DECODE(text, at)
        if not isinstance(key, str):
            return None
        if key in found:
            raise RepeatedKey(f"the key {key!r} is given twice: send it once", text, at)
        at = _skip(text, end)
        if text[at] != ":":
            return None
        at = _skip(text, at + 1)
        reader = _raw_list if key == "records" and text[at] == "[" else _DECODE
        found[key], at = reader(text, at)
        at = _skip(text, at)
    return found if _skip(text, at + 1) == len(text) else None


def _raw_list(text: str, at: int) -> tuple[list[RawRecord], int]:
    """The list at `at` as the text of each of its items, and where it ends."""
    items: list[RawRecord] = []
    at = _skip(text, at + 1)
    if text[at] == "]":
        return items, at + 1
    while True:
        _, end = _DECODE(text, at)
        items.append(RawRecord(_one_line(text[at:end])))
        at = _skip(text, end)
        if text[at] == "]":
            return items, at + 1
        if text[at] != ",":
            raise ValueError("expected ',' or ']'")
        at = _skip(text, at + 1)


def _one_line(raw: str) -> str:
    # (JSON's strings hold no raw line break: one between a record's tokens is only spacing)
    if "\n" in raw or "\r" in raw:
        return raw.replace("\r", " ").replace("\n", " ")
    return raw


class RecordsRequest(PairsRequest):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:  # (decoded as json.loads decodes bytes)
                found = records_first(body.decode(json.detect_encoding(body), "surrogatepass"))
            except UnicodeDecodeError:
                found = None
            if found is None:
                return await super().json()
            self._json = found
        return self._json


class RecordsRoute(APIRoute):
    """A route whose body's records reach the reader as sent (see the module's docstring),
    and whose token is checked before its body is read: a caller without one gets 401 (or
    403 for a role that may not), whatever it sent. (FastAPI reads the body first.)"""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = self.records_handler()

        async def route(request: Request) -> Response:
            return await handler(RecordsRequest(request.scope, request.receive))

        return route

    def records_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """What answers the RecordsRequest: FastAPI's handler, after the route's own token
        check (progressor.serve.direct's route answers the usual request itself, its token
        checked first the same way)."""
        general = super().get_route_handler()
        dependant = as_included(self).dependant
        if not all(request_check(d) for d in dependant.dependencies):
            return general
        checks = [(d.call, d.request_param_name) for d in dependant.dependencies]

        async def checked(request: Request) -> Response:
            if not getattr(request.app, "dependency_overrides", None):
                for call, name in checks:
                    await call(**{name: request})
            return await general(request)

        return checked


def record_line(value: Any) -> str:
    """One record as one line of JSON, with every repeated key it was sent with."""
    if isinstance(value, RawRecord):
        return value
    if isinstance(value, Pairs) and value.pairs is not None:
        items = (f"{json.dumps(k)}:{record_line(v)}" for k, v in value.pairs)
        return "{" + ",".join(items) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{record_line(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(record_line, value)) + "]"
    return json.dumps(value)


def as_included(route: APIRoute) -> Any:
    """The route as its handler sees it: FastAPI (0.120 and later) builds an included route's
    handler inside its inclusion's context (the router's dependencies and responses, the app
    as the provider of dependency overrides), with the APIRoute's attribute names."""
    context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    return context if context is not None and context.original_route is route else route


def request_check(dependant: Dependant) -> bool:
    return (
        inspect.iscoroutinefunction(dependant.call)
        and dependant.name is not None
        and dependant.request_param_name is not None
        and not dependant.dependencies
        and getattr(dependant, "concurrency", None) is None
        and only_request(dependant, allow_body=False)
    )


def only_request(dependant: Dependant, allow_body: bool) -> bool:
    return not (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or (dependant.body_params and not allow_body)
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )
