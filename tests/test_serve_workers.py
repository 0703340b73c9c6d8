"""`progressor serve --workers 2` (what bench/serve.py measures): two worker processes, each
answering POST /v1/step, started through the real entry point."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

import progressor
from progressor.serve.tokens import create_token
from tests.conftest import PROGRAMS, START, full_week


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _step_body() -> dict[str, object]:
    compiled = progressor.Engine().compile(progressor.load_program(PROGRAMS / "low-back-pain.toml"))
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    first = json.loads(compiled.first_week(enrollment).model_dump_json())
    return {"prescription": first, "records": full_week()}


def test_two_workers_answer_steps(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    token, _ = create_token(tokens, "service")
    port = _port()
    script = Path(sys.executable).with_name("progressor")
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(script), "serve", "--workers", "2", "--tokens", str(tokens), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "progressor serve --workers 2 did not start"
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        body, headers = _step_body(), {"Authorization": f"Bearer {token}"}

        def step(_: int) -> tuple[int, int]:
            answer = httpx.post(url + "/v1/step", json=body, headers=headers, timeout=60)
            return answer.status_code, answer.json()["prescription"]["week"]

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(step, range(12))) == {(200, 2)}
    finally:
        server.terminate()
        server.wait(60)
        log.close()
    started = re.findall(r"Started server process \[(\d+)\]", (tmp_path / "serve.log").read_text())
    assert len(set(started)) == 2
