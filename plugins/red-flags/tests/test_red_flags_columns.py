"""The red-flags rule's column form (progressor.columns): what it reads, and that its findings
are the rule's own. tests/test_columns.py holds the two engines to the same bytes on generated
cohorts with red flags; these tests hold the column form to the rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import progressor_red_flags as rf
import pytest

import progressor as p

pl = pytest.importorskip("polars")

START = dt.date(2026, 1, 5)  # a Monday
EXERCISES = ("pelvic-tilt", "knee-to-chest", "bridge")
LBP = Path(__file__).resolve().parents[3] / "programs" / "low-back-pain.toml"


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


def symptoms(logged: dict[int, tuple[str, ...]]) -> list[str]:
    """A patient's `symptoms` column as the column engine gives it (forms.py)."""
    return sorted({f"{day(d)} {code}" for d, codes in logged.items() for code in codes})


def test_the_rule_gives_a_column_form_that_covers_symptom_flags() -> None:
    form = rf.RedFlags().column_form()
    params = rf.RedFlagsParams()

    assert getattr(form, "symptom_flags", False) is True
    [finding] = form.findings(params)
    frame = pl.DataFrame(
        {"symptoms": [[], ["2026-01-05 fever"]]}, schema={"symptoms": pl.List(pl.String)}
    )
    assert frame.select(finding.applies).to_series().to_list() == [False, True]
    assert frame.select(form.routes(params)).to_series().to_list() == [False]


@pytest.mark.parametrize(
    "logged",
    [
        {2: ("saddle-numbness",)},
        {0: ("night-pain",), 4: ("night-pain", "Fever")},
        {1: ("sadle-numbnes", "centralisation")},
        {3: ("weight-loss",), 5: ("bowel-bladder", " leg  weakness ")},
        {0: ("centralisation",)},
    ],
)
@pytest.mark.parametrize("review", [(), ("night-pain", "weight-loss")])
def test_its_findings_are_the_ones_the_rule_makes_per_patient(
    progressor_engine_factory: Callable[..., p.Engine],
    compile_program: Callable[..., p.CompiledProgram],
    outcome: Callable[..., p.Outcome],
    logged: dict[int, tuple[str, ...]],
    review: tuple[str, ...],
) -> None:
    urgent = tuple(c for c in rf.SYMPTOMS if c not in review)
    params = rf.RedFlagsParams(urgent=urgent, review=review)
    safety = f"[safety.red-flags]\nurgent = {list(urgent)}\nreview = {list(review)}\n\n"
    text = LBP.read_text(encoding="utf-8").replace(
        "[safety.new-pain]", f"{safety}[safety.new-pain]"
    )
    compiled = compile_program(text, progressor_engine_factory(["progressor_red_flags"]))
    records = [
        outcome(name, day(d), reps=(5,), hold_s=5, pain=2, flags=logged.get(d, ()))
        for d in range(7)
        for name in EXERCISES
    ]
    enrollment = p.Enrollment(patient="ben", program=compiled.program.id, start=START)
    result = compiled.step(compiled.first_week(enrollment), records)
    seen = [m for m in result.decisions[0].matches if m.rule == "red-flags"]

    [finding] = rf.RedFlags().column_form().findings(params)
    made = finding.make("bridge", *symptoms(logged))

    assert [(f.action, f.reason, f.values) for f in made] == [
        (m.action, m.reason, m.values) for m in seen
    ]
    assert [f.exercise for f in made] == [None] * len(seen)  # the whole program's
    assert [f.reason for f in made if f.alert] == [a.message for a in result.alerts]
