"""The webhook and file alert channels, alone and through progressor's retrying dispatch.

The webhook is tested against a real HTTP server on 127.0.0.1 (an ephemeral port, one
thread, shut down after each test); the core's retries run with a recorded, instant sleep.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import progressor_red_flags as rf
import pytest
from click.testing import CliRunner

import progressor as p
from progressor.cli.commands import main
from progressor.core.alerts import dispatch, parse_specs

ALERT = p.Alert(
    patient="ben",
    week=2,
    rule="red-flags",
    plugin="red-flags",
    message="red flags reported: numbness in the saddle area (saddle-numbness) on 2026-01-07",
    urgent=True,
)
OTHER = ALERT.model_copy(update={"patient": "cleo", "urgent": False})
PROGRAMS = Path(__file__).resolve().parents[3] / "programs"


@dataclass
class Webhook:
    """What the test server answers (one status per request, the last one repeated)."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [204])
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    stall: bool = False


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # the test server is local: no proxy
    state = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append((self.command, self.path, dict(self.headers), body))
            if state.stall:
                state.release.wait(timeout=5)
            status = state.statuses[min(len(state.requests), len(state.statuses)) - 1]
            self.send_response(status)
            if status in (301, 302, 303):
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# -- webhook ------------------------------------------------------------------------------------


def test_webhook_posts_the_alert_as_json(webhook: Webhook) -> None:
    rf.WebhookChannel().send(ALERT, webhook.url)

    [(method, path, headers, body)] = webhook.requests
    assert (method, path) == ("POST", "/alerts")
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == ALERT.model_dump(mode="json")


def test_the_same_alert_has_the_same_idempotency_key(webhook: Webhook) -> None:
    channel = rf.WebhookChannel()
    for alert in (ALERT, ALERT, OTHER):
        channel.send(alert, webhook.url)

    keys = [headers["Idempotency-Key"] for _, _, headers, _ in webhook.requests]
    assert keys[0] == keys[1] != keys[2]


@pytest.mark.parametrize("status", [500, 404, 302])
def test_webhook_raises_on_an_answer_that_is_not_2xx(webhook: Webhook, status: int) -> None:
    webhook.statuses = [status]

    with pytest.raises(OSError, match=str(status)):  # urllib's HTTPError is an OSError
        rf.WebhookChannel().send(ALERT, webhook.url)
    assert len(webhook.requests) == 1  # a redirect is not followed (it would drop the body)


@pytest.mark.parametrize("target", ["", "ftp://example.org/x", "file:///tmp/x", "alerts.example"])
def test_webhook_refuses_a_target_that_is_not_an_http_url(target: str) -> None:
    with pytest.raises(ValueError, match="http"):
        rf.WebhookChannel().send(ALERT, target)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("webhook:alerts.example", "must be an http(s) URL"),
        ("webhook:", "must be an http(s) URL"),
        ("webhook:https:///alerts", "must be an http(s) URL"),
        ("webhook:https://clinic example/alerts", "has a space in it"),
        ("webhook:http://localhost:abc/", "has a bad port"),
        ("file", "needs a path"),
    ],
)
def test_a_target_that_can_never_work_is_refused_before_anything_is_sent(
    spec: str, problem: str
) -> None:
    registry = p.Engine(plugins=["progressor_red_flags"]).registries.alert_channels
    with pytest.raises(p.ProgressorError, match=f"alert channel '{spec}': .*{re.escape(problem)}"):
        parse_specs(registry, [spec])
    assert parse_specs(registry, ["webhook:https://clinic.example/alerts", "file:x.jsonl"])


def test_progressor_next_refuses_a_malformed_webhook_and_computes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROGRESSOR_PLUGINS", "red-flags")
    log = tmp_path / "ben.jsonl"
    log.write_text('{"date": "2026-01-06", "pain": 2}\n', encoding="utf-8")
    args = ["next", str(PROGRAMS / "low-back-pain.toml"), "--log", str(log)]
    result = CliRunner().invoke(main, [*args, "--alerts", "webhook:clinic/alerts"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "must be an http(s) URL" in result.stderr


def test_webhook_gives_up_after_its_timeout(webhook: Webhook) -> None:
    webhook.stall = True

    with pytest.raises(OSError):  # TimeoutError, or URLError wrapping it
        rf.WebhookChannel(timeout_s=0.2).send(ALERT, webhook.url)


def test_dispatch_retries_a_failing_webhook_then_reports_it(webhook: Webhook) -> None:
    webhook.statuses = [500]
    sleeps = Sleeps()
    channels = parse_specs(p.Engine([rf]).registries.alert_channels, [f"webhook:{webhook.url}"])

    [delivery] = dispatch(channels, [ALERT], sleep=sleeps)

    assert not delivery.delivered
    assert (delivery.channel, delivery.target, delivery.attempts) == ("webhook", webhook.url, 3)
    assert delivery.error is not None and "500" in delivery.error
    assert len(webhook.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_dispatch_delivers_when_a_retry_succeeds(webhook: Webhook) -> None:
    webhook.statuses = [503, 200]

    [delivery] = dispatch([(rf.WebhookChannel(), webhook.url)], [ALERT], sleep=Sleeps())

    assert delivery.delivered
    assert delivery.attempts == 2
    bodies = {body for _, _, _, body in webhook.requests}
    assert len(bodies) == 1  # the retry sends the very same alert


# -- file ---------------------------------------------------------------------------------------


def test_file_appends_one_json_line_per_alert_creating_folders(tmp_path: Path) -> None:
    target = tmp_path / "clinic" / "alerts" / "alerts.jsonl"
    channel = rf.FileChannel()

    channel.send(ALERT, str(target))
    channel.send(OTHER, str(target))

    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        ALERT.model_dump(mode="json"),
        OTHER.model_dump(mode="json"),
    ]


def test_file_without_a_path_fails_and_dispatch_reports_it() -> None:
    [delivery] = dispatch([(rf.FileChannel(), "")], [ALERT], sleep=Sleeps())

    assert not delivery.delivered
    assert delivery.error is not None and "file:PATH" in delivery.error


def test_file_that_cannot_be_written_fails(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder", encoding="utf-8")

    with pytest.raises(OSError):
        rf.FileChannel().send(ALERT, str(tmp_path / "taken" / "alerts.jsonl"))


# -- through the command line (the plugin loads from its entry point) --------------------------


def test_progressor_next_sends_a_red_flag_alert_to_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROGRESSOR_PLUGINS", "red-flags")
    log = tmp_path / "ben.jsonl"
    log.write_text(
        '{"date": "2026-01-06", "pain": 2, "flags": ["saddle-numbness"]}\n', encoding="utf-8"
    )
    alerts = tmp_path / "out" / "alerts.jsonl"
    args = ["next", str(PROGRAMS / "low-back-pain.toml"), "--log", str(log)]

    result = CliRunner().invoke(main, [*args, "--alerts", f"file:{alerts}"])

    assert result.exit_code == 0, result.output
    [line] = alerts.read_text(encoding="utf-8").splitlines()
    sent = json.loads(line)
    assert (sent["rule"], sent["plugin"], sent["urgent"]) == ("red-flags", "red-flags", True)
    assert 'status = "paused"' in result.stdout
