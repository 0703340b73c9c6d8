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
`split` is each worker's share of the connections, counted halfway through the level (from
/proc; docs/serve.md says how the workers share them out).
`--seconds`, `--clients` and `--workers` shorten or change the run.

`--client wrk` (the default when wrk is installed: `apt-get install wrk`, or `make bench-serve`)
drives the same request with wrk, a load generator written in C, so that nearly all of the
two cores go to the server: `-c N -t min(N, 2) -d S --latency`, the request made by a small Lua
script, and its output read into the same table (errors: the answers that are not 2xx or 3xx
and the socket errors). `--client python` keeps the asyncio clients above.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from step import SEED, START, week_of_outcomes  # (bench/step.py: the same seed week)

import progressor
from progressor.serve.balance import connections_held
from progressor.serve.tokens import create_token

TARGET_RPS = 2000.0
TARGET_P99_MS = 25.0


@dataclass
class Row:
    """One level's figures, as the table prints them."""

    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    done: int
    cpu_seconds: float = 0.0
    split: str = ""  # (each worker's connections, counted halfway through the level)

    def line(self) -> str:
        cpu_ms = self.cpu_seconds * 1000 / self.done if self.done else 0.0
        return (
            f"{self.clients:>7} {self.rps:>9.0f} {self.p50_ms:>8.2f} {self.p99_ms:>8.2f}"
            f" {self.errors:>7} {self.done:>9} {cpu_ms:>11.3f}  {self.split}"
        )


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def row(self) -> Row:
        done = len(self.latencies)
        ordered = sorted(self.latencies) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rps = done / self.seconds if self.seconds else 0.0
        return Row(self.clients, rps, p50, p99, self.errors, done)


def request_body() -> bytes:
    """The body of POST /v1/step: the seed's first week and a full week of outcomes."""
    compiled = progressor.Engine().compile(progressor.load_program(SEED))
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    first = json.loads(compiled.first_week(enrollment).model_dump_json())
    return json.dumps({"prescription": first, "records": week_of_outcomes(START)}).encode()


def request_bytes(port: int, token: str, body: bytes) -> bytes:
    """POST /v1/step with `body`, as sent."""
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


async def drive(port: int, request: bytes, clients: int, seconds: float) -> Row:
    level = Level(clients)
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client(port, request, level, until) for _ in range(clients)))
    level.seconds = time.perf_counter() - started
    return level.row()


# -- wrk ----------------------------------------------------------------------------------------

#: The request, for wrk: the body read from a file (no quoting of JSON inside Lua).
WRK_SCRIPT = """\
local file = assert(io.open({body!r}, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk_script(directory: Path, token: str, body: bytes) -> Path:
    """The Lua script that makes wrk send POST /v1/step with `body` and the bearer token."""
    body_file = directory / "body.json"
    body_file.write_bytes(body)
    script = directory / "step.lua"
    script.write_text(WRK_SCRIPT.format(body=str(body_file), token=token))
    return script


def run_wrk(wrk: str, port: int, script: Path, clients: int, seconds: float) -> Row:
    """One level driven by wrk: `-c clients -t min(clients, 2)`, its output read."""
    command = [wrk, "-c", str(clients), "-t", str(min(clients, 2))]
    command += ["-d", f"{max(1, round(seconds))}s", "--latency", "-s", str(script)]
    command.append(f"http://127.0.0.1:{port}/v1/step")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return wrk_row(clients, done.stdout)


def wrk_row(clients: int, output: str) -> Row:
    """The figures of wrk's output (run with --latency)."""

    def found(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    def latency(percent: str) -> float:
        match = found(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        return float(match[1]) * _UNITS[match[2]] if match else float("nan")

    requests = found(r"^\s*(\d+) requests in")
    rate = found(r"^Requests/sec:\s*([\d.]+)")
    errors = 0
    if sockets := found(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        errors += sum(int(n) for n in sockets.groups())
    if refused := found(r"Non-2xx or 3xx responses: (\d+)"):
        errors += int(refused[1])
    return Row(
        clients,
        rps=float(rate[1]) if rate else 0.0,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        errors=errors,
        done=int(requests[1]) if requests else 0,
    )


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


def workers_split(group: int, port: int) -> str:
    """Each worker's share of the connections to `port` now, as "16/16" (Linux)."""
    held = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and b"spawn_main" in command:  # (uvicorn's workers)
            held.append(connections_held(int(entry.name), port))
    return "/".join(map(str, sorted(held))) or "-"


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
    wrk = shutil.which("wrk")
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default="wrk" if wrk else "python",
        help="the load generator (default: wrk when it is installed, else python)",
    )
    args = parser.parse_args(argv)
    if args.client == "wrk" and wrk is None:
        parser.error("wrk is not installed (apt-get install wrk; or --client python)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        tokens = Path(directory) / "tokens.json"
        token, _ = create_token(tokens, "service", "bench")
        body = request_body()
        server = start_server(port, args.workers, tokens)
        try:
            print(
                f"progressor serve --workers {args.workers}; POST /v1/step, 21 outcomes; "
                f"client: {_client_name(args.client, wrk)}"
            )
            print(
                f"{platform.python_implementation()} {platform.python_version()}, "
                f"{os.cpu_count()} cores, {dt.date.today()}, {args.seconds:g} s per level, "
                f"load average {os.getloadavg()[0]:.2f} before"
            )
            print("clients     req/s   p50 ms   p99 ms  errors  requests  cpu ms/req  split")
            script = wrk_script(Path(directory), token, body)
            request = request_bytes(port, token, body)
            for clients in args.clients:
                before = server_cpu_seconds(server.pid)
                split: list[str] = []
                halfway = threading.Timer(
                    args.seconds / 2,
                    lambda found=split: found.append(workers_split(server.pid, port)),
                )
                halfway.start()
                if args.client == "wrk":
                    assert wrk is not None
                    row = run_wrk(wrk, port, script, clients, args.seconds)
                else:
                    row = asyncio.run(drive(port, request, clients, args.seconds))
                row.cpu_seconds = server_cpu_seconds(server.pid) - before
                halfway.join()
                row.split = split[0] if split else "-"
                print(row.line(), flush=True)
        finally:
            stop_server(server)
    print(
        f"targets at 32 clients on two free cores: >= {TARGET_RPS:g} req/s, "
        f"p99 <= {TARGET_P99_MS:g} ms"
    )


def _client_name(client: str, wrk: str | None) -> str:
    if client == "python":
        return "asyncio sockets in this process (sharing the cores)"
    threads = "-t min(clients, 2)"
    return f"wrk ({wrk}, {threads}, one connection per client)"


if __name__ == "__main__":
    main()
