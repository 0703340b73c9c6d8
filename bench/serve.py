"""Load test of `progressor serve`: POST /v1/step on the seed program with a full week.

Run as `.venv/bin/python bench/serve.py` (needs the serve extra). It starts
`progressor serve --workers 2` on 127.0.0.1 (a free port, a token file of its own), then
drives POST /v1/step (the seed program's first week and 21 outcomes: each exercise every day)
from 1, 8 and 32 concurrent clients for 60 s each, and prints requests per second, p50 and
p99 latency and the errors (any answer but 200) of each level. The clients are asyncio
coroutines on raw keep-alive sockets, one connection each, the request bytes made once: the
client's own work per request is a write and a read, so the server is what is measured.
The server's CPU time per request is printed too (`cpu ms/req`: the user and system time of
every process of the server, read from /proc before and after each level, over the requests
answered): on a shared machine the rates move with the load, the CPU a request costs much less.
`--seconds`, `--clients` and `--workers` shorten or change the run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from step import SEED, START, week_of_outcomes  # (bench/step.py: the same seed week)

import progressor
from progressor.serve.tokens import create_token

TARGET_RPS = 2000.0
TARGET_P99_MS = 25.0


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def line(self) -> str:
        done = len(self.latencies)
        ordered = sorted(self.latencies) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rps = done / self.seconds if self.seconds else 0.0
        cpu_ms = self.cpu_seconds * 1000 / done if done else 0.0
        return (
            f"{self.clients:>7} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {self.errors:>7} {done:>9}"
            f" {cpu_ms:>11.3f}"
        )


def request_bytes(port: int, token: str) -> bytes:
    """POST /v1/step with the seed's first week and a full week of outcomes, as sent."""
    compiled = progressor.Engine().compile(progressor.load_program(SEED))
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    first = json.loads(compiled.first_week(enrollment).model_dump_json())
    body = json.dumps({"prescription": first, "records": week_of_outcomes(START)}).encode()
    head = (
        f"POST /v1/step HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """One response read whole; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _client(port: int, request: bytes, level: Level, until: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.perf_counter()) < until:
            writer.write(request)
            status = await _answer(reader)
            level.latencies.append(time.perf_counter() - started)
            level.errors += status != 200
    finally:
        writer.close()


async def drive(port: int, request: bytes, clients: int, seconds: float) -> Level:
    level = Level(clients)
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client(port, request, level, until) for _ in range(clients)))
    level.seconds = time.perf_counter() - started
    return level


def server_cpu_seconds(group: int) -> float:
    """User and system CPU seconds of every live process in process group `group` (Linux)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # (a process that ended meanwhile)
        fields = stat[stat.rindex(")") + 2 :].split()  # (after the command's name)
        if int(fields[2]) == group:  # (pgrp; then utime and stime are fields 11 and 12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, workers: int, tokens: Path) -> subprocess.Popen[bytes]:
    """`progressor serve` in its own process group (stopped with it), once /healthz answers."""
    script = Path(sys.executable).with_name("progressor")
    command = [str(script), "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--tokens", str(tokens)]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit("progressor serve did not answer /healthz within 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="per level (default 60)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        tokens = Path(directory) / "tokens.json"
        token, _ = create_token(tokens, "service", "bench")
        server = start_server(port, args.workers, tokens)
        try:
            request = request_bytes(port, token)
            print(f"progressor serve --workers {args.workers}; POST /v1/step, 21 outcomes")
            print(
                f"{platform.python_implementation()} {platform.python_version()}, "
                f"{os.cpu_count()} cores, {dt.date.today()}, {args.seconds:g} s per level"
            )
            print("clients     req/s   p50 ms   p99 ms  errors  requests  cpu ms/req")
            for clients in args.clients:
                before = server_cpu_seconds(server.pid)
                level = asyncio.run(drive(port, request, clients, args.seconds))
                level.cpu_seconds = server_cpu_seconds(server.pid) - before
                print(level.line(), flush=True)
        finally:
            stop_server(server)
    print(
        f"targets at 32 clients on two free cores: >= {TARGET_RPS:g} req/s, "
        f"p99 <= {TARGET_P99_MS:g} ms"
    )


if __name__ == "__main__":
    main()
