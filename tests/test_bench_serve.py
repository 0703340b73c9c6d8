"""bench/serve.py's reading of wrk's output (no wrk needed: its output is given here)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:40121/v1/step
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.63ms    6.01ms  80.12ms   79.37%
    Req/Sec     1.03k   102.45     1.25k    70.00%
  Latency Distribution
     50%   14.80ms
     75%   17.95ms
     90%   22.10ms
     99%    1.20s
  10264 requests in 5.01s, 29.86MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   2048.71
Transfer/sec:      5.96MB
"""


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # (bench/serve.py imports bench/step.py so)
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH / "serve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_wrk_output_is_read_into_the_table_row(bench: ModuleType) -> None:
    row = bench.wrk_row(32, WRK_OUTPUT)
    assert (row.clients, row.done, row.errors) == (32, 10264, 7)  # (3 socket errors, 4 non-2xx)
    assert row.rps == pytest.approx(2048.71)
    assert row.p50_ms == pytest.approx(14.80)
    assert row.p99_ms == pytest.approx(1200.0)  # (wrk prints seconds past 1,000 ms)


def test_wrk_output_without_errors_or_latencies(bench: ModuleType) -> None:
    quiet = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "errors" not in line and "%" not in line
    )
    row = bench.wrk_row(1, quiet.replace("Non-2xx or 3xx responses: 4", ""))
    assert row.errors == 0
    assert math.isnan(row.p50_ms)


def test_wrk_script_posts_the_body_with_the_token(bench: ModuleType, tmp_path: Path) -> None:
    script = bench.wrk_script(tmp_path, "prg_abc", b'{"records": []}').read_text()
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Authorization"] = "Bearer prg_abc"' in script
    assert str(tmp_path / "body.json") in script
    assert (tmp_path / "body.json").read_bytes() == b'{"records": []}'
