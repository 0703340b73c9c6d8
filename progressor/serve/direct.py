"""The compute routes' usual request answered without FastAPI's per-request machinery.

For each request FastAPI walks the route's dependencies generically (a cache, exit stacks,
the parameters of every kind looked up), validates the answer again and builds an endpoint
context for its error messages: for POST /v1/step that was a fifth of the server's CPU.
`DirectRoute` answers the usual request itself, with the same calls FastAPI makes: the token
checked by the route's own dependency (first: a caller without one gets no body parsed), the
body parsed as `RecordsRoute` parses it (for a JSON content type), then validated by the
route's own body field, the endpoint called, and its answer written by pydantic-core as
FastAPI writes it. Any other request (a
body that is not JSON or does not validate, another content type, an override of a
dependency) goes to FastAPI's own handler, on the same request object (its body read once),
so every error keeps the answer FastAPI gives it. The OpenAPI document is FastAPI's, from the
route as declared. A route whose shape is not this one (a plain `def`, parameters other than
the body, the request and dependencies that take only the request) is FastAPI's alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException

from progressor.serve.bodies import RecordsRoute, as_included, only_request, request_check

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
JSON = b"application/json"


class DirectRoute(RecordsRoute):
    """A compute route (records read as sent) whose usual request skips FastAPI's machinery."""

    def records_handler(self) -> Handler:
        general = super().records_handler()
        route = as_included(self)
        return _direct(route, general) if _plain_shape(route) else general


def _direct(route: Any, general: Handler) -> Handler:
    dependant, body_field = route.dependant, route.body_field
    assert body_field is not None
    checks = [(d.name, d.call, d.request_param_name) for d in dependant.dependencies]
    answer = TypeAdapter(route.response_model)
    endpoint: Callable[..., Awaitable[Any]] = route.endpoint
    overrides = route.dependency_overrides_provider

    async def handle(request: Request) -> Response:
        if _content_type(request) != JSON or getattr(overrides, "dependency_overrides", None):
            return await general(request)
        values: dict[str, Any] = {}
        # The token first (a 401 or 403 is raised here): a caller without one gets no body
        # parsed for it. (FastAPI reads the body before the dependencies.)
        for name, call, request_name in checks:
            assert call is not None and name is not None and request_name is not None
            values[name] = await call(**{request_name: request})
        try:
            await request.body()
        except Exception as exc:  # (as FastAPI answers a body it could not read)
            raise HTTPException(400, "There was an error parsing the body") from exc
        try:
            data = await request.json()
        except Exception:  # (not JSON: FastAPI's handler answers it, the body read already)
            return await general(request)
        body, errors = body_field.validate(data, {}, loc=("body",))
        if errors:
            return await general(request)
        values[body_field.name] = body
        if dependant.request_param_name is not None:
            values[dependant.request_param_name] = request
        result = answer.validate_python(await endpoint(**values), from_attributes=True)
        return Response(answer.dump_json(result, by_alias=True), media_type="application/json")

    return handle


def _content_type(request: Request) -> bytes | None:
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return bytes(value)
    return None


def _plain_shape(route: Any) -> bool:
    """Whether `route` takes one JSON body, the request and dependencies of the request
    alone, and answers its response model with FastAPI's defaults (the shape `_direct`
    answers); else FastAPI's handler answers every request."""
    dependant = route.dependant
    return (
        inspect.iscoroutinefunction(route.endpoint)
        and route.body_field is not None
        and len(dependant.body_params) == 1
        and only_request(dependant, allow_body=True)
        and all(request_check(d) for d in dependant.dependencies)
        and route.response_model is not None
        and isinstance(route.response_class, DefaultPlaceholder)
        and route.status_code is None
        and not route.response_model_exclude_unset
        and not route.response_model_exclude_defaults
        and not route.response_model_exclude_none
        and route.response_model_include is None
        and route.response_model_exclude is None
        and route.response_model_by_alias
        and getattr(route, "max_body_size", None) is None
    )
