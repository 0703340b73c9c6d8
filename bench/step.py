"""Micro-benchmark of the weekly step: one patient, one full week of the seed program.

Run as `.venv/bin/python bench/step.py`. Measures, best of several rounds (time.perf_counter):
(a) microseconds per patient step (`CompiledProgram.step` on already-parsed records) and
(b) microseconds to parse the same week's outcomes from JSON lines into models
(`progressor.reading.read_log`), and compares (a) with the target of 50 us per step.
With `--profile`, it then prints where a step's time goes (cProfile, by own time; the
profiler inflates small calls, so read it for proportions, not microseconds).
"""

from __future__ import annotations

import cProfile
import datetime as dt
import json
import platform
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import progressor
from progressor.reading import read_log

SEED = Path(__file__).resolve().parent.parent / "programs" / "low-back-pain.toml"
START = dt.date(2026, 1, 5)
TARGET_US = 50.0
ROUNDS = 7
BUDGET_S = 1.5  # per measurement, spread over its rounds


def week_of_outcomes(start: dt.date) -> list[dict[str, Any]]:
    """Each of the seed's three exercises once a day for 7 days, at the dose, with pain scores."""
    rows: list[dict[str, Any]] = []
    for day in range(7):
        date = (start + dt.timedelta(days=day)).isoformat()
        pain = 2 + day % 2
        for exercise in ("pelvic-tilt", "knee-to-chest", "bridge"):
            row: dict[str, Any] = {
                "kind": "outcome",
                "patient": "anna",
                "date": date,
                "exercise": exercise,
                "reps": [5],
                "hold_s": 5,
                "pain_before": pain,
                "pain_during": pain,
                "pain_after": pain,
                "pain_next_morning": pain,
                "rpe": 4,
            }
            rows.append(row)  # knee to chest: no side given means both sides were done
    return rows


def best_us(run: Callable[[], object], budget_s: float = BUDGET_S) -> tuple[float, int]:
    """Best microseconds per call over ROUNDS rounds, and the calls per round."""
    start = time.perf_counter()
    run()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(10, int(budget_s / ROUNDS / once))
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6, calls


def main() -> None:
    engine = progressor.Engine()
    compiled = engine.compile(progressor.load_program(SEED))
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    prescription = compiled.first_week(enrollment)

    lines = [json.dumps(row) for row in week_of_outcomes(START)]
    log = read_log(lines, "bench", "jsonl")
    if log.set_aside:
        raise SystemExit(f"the benchmark's own log has bad records: {log.set_aside}")
    records = list(log.records)

    result = compiled.step(prescription, records)
    actions = ", ".join(f"{d.exercise} {d.action}" for d in result.decisions)

    for _ in range(200):  # warm up caches and the allocator
        compiled.step(prescription, records)
        read_log(lines, "bench", "jsonl")

    step_us, step_calls = best_us(lambda: compiled.step(prescription, records))
    parse_us, parse_calls = best_us(lambda: read_log(lines, "bench", "jsonl"))

    print(
        f"python: {sys.executable} ({platform.python_implementation()} {platform.python_version()})"
    )
    print(f"week: {len(records)} outcomes of 3 exercises over 7 days; step gives: {actions}")
    print(f"(a) step:  {step_us:8.1f} us per patient step  (best of {ROUNDS} x {step_calls})")
    print(
        f"(b) parse: {parse_us:8.1f} us per week of JSON lines (best of {ROUNDS} x {parse_calls})"
    )
    print(f"step / parse: {step_us / parse_us:.2f}")
    met = "met" if step_us <= TARGET_US else "NOT met"
    print(f"target: <= {TARGET_US:g} us per patient step: {met}")
    if "--profile" in sys.argv[1:]:
        profile(lambda: compiled.step(prescription, records))


def profile(run: Callable[[], object], calls: int = 2000, top: int = 25) -> None:
    """The functions a step spends its own time in, per step."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    print(f"\nprofile, per step ({calls} steps): own us, calls, function")
    for (path, line, name), (_, ncalls, own, _cum, _) in rows[:top]:
        where = f"{Path(path).name}:{line}" if line else "builtin"
        print(f"{own / calls * 1e6:8.2f} {ncalls / calls:6.1f}  {name} ({where})")


if __name__ == "__main__":
    main()
