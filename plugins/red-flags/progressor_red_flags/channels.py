"""Alert channels: ``webhook:URL`` posts each alert as JSON, ``file:PATH`` appends a JSON line.

A channel only delivers or raises; progressor's core retries a failure and reports an alert
that could not be delivered (``progressor.core.alerts.dispatch``), so nothing here retries.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from progressor import Alert, AlertChannel


def alert_json(alert: Alert) -> str:
    """One alert as compact JSON on one line, keys sorted: the same alert, the same bytes."""
    return json.dumps(alert.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


class WebhookError(RuntimeError):
    """The webhook answered, but not with a 2xx status."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 301/302/303 with a GET and no body: the alert would be lost while
    # the final answer looks like a success. A redirect is therefore a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookChannel(AlertChannel):
    name = "webhook"
    description = "POSTs each alert as JSON to the target http(s) URL; any non-2xx answer fails"

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    def check(self, target: str) -> list[str]:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return [
                f"the target must be an http(s) URL, e.g. webhook:https://host/path, not {target!r}"
            ]
        if any(c.isspace() for c in target):
            return [f"the URL {target!r} has a space in it (write it as %20)"]
        try:
            parts.port  # noqa: B018 (reading it checks it: urllib raises for a bad port)
        except ValueError as exc:
            return [f"the URL {target!r} has a bad port: {exc}"]
        return []

    def send(self, alert: Alert, target: str) -> None:
        if problems := self.check(target):
            raise ValueError(problems[0])
        body = alert_json(alert).encode("utf-8")
        request = urllib.request.Request(
            target,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "progressor-red-flags",
                # A retry after a timeout may deliver the same alert twice: let the receiver
                # recognise it (the same alert always gives the same key).
                "Idempotency-Key": hashlib.sha256(body).hexdigest(),
            },
        )
        # Built per call: the opener reads the proxy settings of the environment.
        opener = urllib.request.build_opener(_NoRedirect())
        with opener.open(request, timeout=self.timeout_s) as response:
            status = response.status
        if not 200 <= status < 300:  # urllib raises for most, but not every, other status
            raise WebhookError(f"{target} answered HTTP {status}")


class FileChannel(AlertChannel):
    name = "file"
    description = "appends each alert as one JSON line to the target file (file:PATH)"

    def check(self, target: str) -> list[str]:
        return [] if target else ["the file channel needs a path: file:PATH"]

    def send(self, alert: Alert, target: str) -> None:
        if problems := self.check(target):
            raise ValueError(problems[0])
        path = Path(target).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (alert_json(alert) + "\n").encode("utf-8")
        # One write(2) of the whole line with O_APPEND: concurrent writers never interleave
        # within a line; fsync, so that a delivery reported as done survives a crash.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
