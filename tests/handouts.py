"""A small clinic in a store, through the real command line: the handout's and chart's tests
share it. anna progresses twice; ben's flare pauses him in week 2."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import START, full_week
from tests.test_cli import SEED, run

#: Internal names a patient must never read: rule ids, strategies, exercise and program ids.
INTERNAL = (
    "pelvic-tilt",
    "knee-to-chest",
    "low-back-pain",
    "new-pain",
    "pain-flare",
    "pain-monitoring",
    "missing-data",
    "adherence",
    "double",
    "linear",
    "hold_s",
    "reps",
)


def needs(*tools: str) -> None:
    """Skip when a tool is missing here, unless PROGRESSOR_REQUIRE_TOOLS is set (.ci/run sets
    it, having installed them): there, a missing tool fails the test."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (apt-get install chromium poppler-utils)"
    if os.environ.get("PROGRESSOR_REQUIRE_TOOLS"):
        pytest.fail(message)
    pytest.skip(message)


def clinic(tmp_path: Path) -> dict[str, str]:
    """A store with anna (two good weeks) and ben (a flare in week 2), computed to week 3."""
    store = tmp_path / "clinic.db"
    settings = tmp_path / "progressor.toml"
    settings.write_text(
        '[clinic]\nname = "Riverside Physiotherapy"\ncontact = "01632 960 123"\n',
        encoding="utf-8",
    )
    env = {"PROGRESSOR_STORE": str(store), "PROGRESSOR_SETTINGS": str(settings)}
    assert run("init", env=env).returncode == 0
    for patient in ("anna", "ben"):
        done = run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
        assert done.returncode == 0, done.stderr
    week2 = START + dt.timedelta(days=7)
    rows = [
        *({**r, "patient": p} for p in ("anna", "ben") for r in full_week()),
        *({**r, "patient": "anna"} for r in full_week(week2, reps=6)),
        *({**r, "patient": "ben"} for r in full_week(week2, reps=6)),
        {"patient": "ben", "date": (week2 + dt.timedelta(days=5)).isoformat(), "pain": 8},
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert run("import", str(log), env=env).returncode == 0
    done = run("recompute", "--week", (START + dt.timedelta(days=14)).isoformat(), env=env)
    assert done.returncode == 0, done.stderr
    return env
