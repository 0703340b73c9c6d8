"""Shared fixtures: the real programs, an engine with the built-ins, a log writer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import progressor

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "programs"
START = dt.date(2026, 1, 5)


#: The shipped programs a synthetic clinic's dataset uses (progressor.synth).
CLINIC_PROGRAMS = ("low-back-pain", "achilles-tendinopathy", "graded-walking")


def compiled_programs(
    names: Iterable[str] = CLINIC_PROGRAMS,
) -> list[tuple[progressor.CompiledProgram, str]]:
    """Shipped programs compiled, each with its text (what synthesize_dataset takes)."""
    engine = progressor.Engine()
    programs = []
    for name in names:
        path = PROGRAMS / f"{name}.toml"
        text = path.read_text(encoding="utf-8")
        programs.append((engine.compile(progressor.load_program(path)), text))
    return programs


@pytest.fixture
def engine() -> progressor.Engine:
    return progressor.Engine()


@pytest.fixture
def seed(engine: progressor.Engine) -> progressor.CompiledProgram:
    return engine.compile(progressor.load_program(PROGRAMS / "low-back-pain.toml"))


def full_week(
    start: dt.date = START, days: Iterable[int] = (0, 2, 4), pain: float = 2, **dose: Any
) -> list[dict[str, Any]]:
    """Seed-program outcomes at the starting dose on the given days, as log dicts."""
    reps, hold = dose.get("reps", 5), dose.get("hold_s", 5)
    out = []
    for day in days:
        date = (start + dt.timedelta(days=day)).isoformat()
        for name in ("pelvic-tilt", "knee-to-chest", "bridge"):
            out.append(
                {
                    "date": date,
                    "exercise": name,
                    "reps": [reps],
                    "hold_s": hold,
                    "pain_before": pain,
                    "pain_during": pain,
                    "pain_after": pain,
                }
            )
    return out


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[[Iterable[Mapping[str, Any] | str], str], Path]:
    def write(rows: Iterable[Mapping[str, Any] | str], name: str = "log.jsonl") -> Path:
        path = tmp_path / name
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


class SometimesBroken(progressor.SafetyRule):
    """A clinic rule that raises for about one patient in ten (by a checksum of the id)."""

    name = "sometimes-broken"

    def evaluate(self, week: progressor.WeekView, params: Any) -> Iterator[progressor.Finding]:
        if sum(map(ord, week.prescription.patient)) % 10 == 0:
            raise KeyError("lookup table out of date")
        yield from ()
