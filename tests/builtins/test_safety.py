"""Built-in safety rules at and around their thresholds, and the most conservative action.

pain-flare and missing-data are essential: they apply to every program. The others apply
where a program names them.
"""

from __future__ import annotations

from typing import Any

import pytest

import progressor as p
from tests.builtins.conftest import (
    EX,
    actions,
    applied,
    compile_program,
    decision,
    dose_of,
    enroll,
    exercise,
    flags,
    lbp_sessions,
    match,
    on,
    outcome,
    report,
    sessions,
)

LBP = ("pelvic-tilt", "knee-to-chest", "bridge")
TILT = {"reps": [5], "hold_s": 5}


def hold_exercise(id: str = EX) -> dict[str, Any]:
    """A pelvic-tilt-like exercise: 1 x 5 x 5 s, + 1 s a met week, floor 3 s."""
    return exercise(
        "hold",
        {"sets": 1, "reps": 5, "hold_s": 5},
        {"strategy": "linear", "field": "hold_s", "step": 1, "max": 10},
        id=id,
        floor={"reps": 3, "hold_s": 3},
    )


def two_exercises(safety: dict[str, dict[str, Any]]) -> p.CompiledProgram:
    return compile_program(hold_exercise("tilt"), hold_exercise("bridge"), safety=safety)


def both(week: int = 1, days: tuple[int, ...] = (0, 2, 4), **kw: Any) -> list[p.Outcome]:
    """Both exercises of `two_exercises` at the full dose."""
    return [
        o for name in ("tilt", "bridge") for o in sessions(name, week=week, days=days, **TILT, **kw)
    ]


def assert_one_applied_everywhere(result: p.StepResult) -> None:
    for found in result.decisions:
        applied(found)


# -- pain-flare --------------------------------------------------------------------------------


@pytest.fixture
def tiny() -> p.CompiledProgram:
    """One exercise and only the essential rules: pain-flare with its default pause_at 7."""
    return compile_program(hold_exercise())


@pytest.mark.parametrize(
    ("where", "paused"),
    [
        ({"pain": (2, 6, 3)}, False),  # pause_at - 1
        ({"pain": (2, 7, 3)}, True),  # pause_at
        ({"pain": (6, 6, 6)}, False),
        ({"pain": (3, 3, 7)}, True),  # after
        ({"pain": 2, "pain_next_morning": 7}, True),  # next morning
        ({"pain": 2, "pain_next_morning": 6}, False),
    ],
)
def test_pain_flare_default_threshold_on_outcomes(
    tiny: p.CompiledProgram, where: dict[str, Any], paused: bool
) -> None:
    records = [*sessions(days=(0, 2), **TILT), outcome(day=4, **TILT, **where)]
    result = tiny.step(enroll(tiny), records)
    found = decision(result)
    if paused:
        assert (found.action, found.rule, found.status) == ("pause", "pain-flare", "paused")
        assert result.prescription.status == "paused"
        assert [a.rule for a in result.alerts] == ["pain-flare"]
    else:
        assert found.action == "progress"
        assert result.prescription.status == "active"
        assert result.alerts == ()
        assert not any(m.rule == "pain-flare" for m in found.matches)


@pytest.mark.parametrize(("pain", "paused"), [(6, False), (7, True), (10, True)])
def test_pain_flare_from_a_standalone_pain_report(
    tiny: p.CompiledProgram, pain: float, paused: bool
) -> None:
    records = [*sessions(**TILT), report(pain, day=5)]
    result = tiny.step(enroll(tiny), records)
    assert result.prescription.status == ("paused" if paused else "active")
    # Below the threshold a report the patient called a flare still holds and flags review.
    assert decision(result).action == ("pause" if paused else "hold")
    calm = tiny.step(enroll(tiny), [*sessions(**TILT), report(pain, day=5, context="other")])
    assert decision(calm).action == ("pause" if paused else "progress")


def test_pain_flare_pauses_the_whole_program(lbp: p.CompiledProgram) -> None:
    result = lbp.step(enroll(lbp), [*lbp_sessions(), report(8, day=3)])
    nxt = result.prescription
    assert nxt.status == "paused"
    assert {name: s.status for name, s in nxt.exercises.items()} == dict.fromkeys(LBP, "paused")
    for found in result.decisions:
        assert (found.action, found.rule, found.status) == ("pause", "pain-flare", "paused")
        assert found.dose_after == found.dose_before
        assert match(found, "pain-flare").values["max_pain"] == 8
        applied(found)
    [alert] = result.alerts
    assert (alert.rule, alert.patient, alert.week) == ("pain-flare", "pat-001", 1)
    assert ("review", None, "pain-flare") in flags(result)


def test_pain_flare_uses_the_program_pause_at(walking: p.CompiledProgram) -> None:
    # graded-walking sets pause_at = 8.
    walk = [outcome("walk", day=d, duration_s=[900], pain=(3, 5, 4)) for d in (0, 1, 3, 5)]
    calm = walking.step(enroll(walking), [*walk, report(7, day=2)])
    assert calm.prescription.status == "active" and calm.alerts == ()
    flare = walking.step(enroll(walking), [*walk, report(8, day=2)])
    assert flare.prescription.status == "paused"
    assert set(actions(flare).values()) == {"pause"}


def test_an_adverse_event_pauses_the_program_whatever_the_pain(lbp: p.CompiledProgram) -> None:
    records = lbp_sessions(pain=1)
    records.append(outcome("bridge", day=6, reps=[5], hold_s=5, pain=1, adverse_event=True))
    result = lbp.step(enroll(lbp), records)
    assert result.prescription.status == "paused"
    assert set(actions(result).values()) == {"pause"}
    [alert] = result.alerts
    assert alert.rule == "pain-flare" and "adverse event" in alert.message
    assert match(decision(result, "pelvic-tilt"), "pain-flare").values["adverse_events"] == 1


def test_an_adverse_event_flag_on_an_outcome_pauses_too(lbp: p.CompiledProgram) -> None:
    # The flag "adverse-event" pauses on an outcome as it does on a pain report.
    records = lbp_sessions(pain=1)
    records.append(outcome("bridge", day=6, reps=[5], hold_s=5, pain=1, flags=("adverse-event",)))
    result = lbp.step(enroll(lbp), records)
    assert result.prescription.status == "paused"
    [alert] = result.alerts
    assert alert.rule == "pain-flare" and "adverse event" in alert.message


def test_a_paused_program_stays_paused_next_week(lbp: p.CompiledProgram) -> None:
    first = enroll(lbp)
    paused = lbp.step(first, [*lbp_sessions(), report(7, day=1)])
    later = lbp.step(paused.prescription, lbp_sessions(week=2, pain=1))
    assert later.prescription.status == "paused"
    for found in later.decisions:
        assert (found.action, found.rule, found.status) == ("pause", "awaiting-clinician", "paused")
        assert found.dose_after == found.dose_before == first.exercises[found.exercise].dose
    assert {s.status for s in later.prescription.exercises.values()} == {"paused"}


@pytest.mark.parametrize(
    "fields", [{"pain": (2, 8, 6)}, {"pain": 2, "adverse_event": True}], ids=["pain", "adverse"]
)
def test_pain_flare_counts_an_outcome_of_an_unknown_exercise(
    lbp: p.CompiledProgram, fields: dict[str, Any]
) -> None:
    # Not counted towards progress (set aside), but the patient's pain is still the patient's.
    records = [*lbp_sessions(), outcome("plank", day=1, duration_s=[30], **fields)]
    result = lbp.step(enroll(lbp), records)
    assert "unknown exercise 'plank'" in result.set_aside[0].reason
    assert result.prescription.status == "paused"
    assert set(actions(result).values()) == {"pause"}
    assert [a.rule for a in result.alerts] == ["pain-flare"]


def test_an_adverse_event_while_paused_still_alerts_the_clinician(lbp: p.CompiledProgram) -> None:
    # Any adverse event raises a clinician alert, also one logged while awaiting the clinician.
    paused = lbp.step(enroll(lbp), [*lbp_sessions(), report(8, day=1)])
    event = outcome("bridge", week=2, day=1, pain=(3, 9, 9), adverse_event=True, **TILT)
    later = lbp.step(paused.prescription, [event])
    assert later.prescription.status == "paused"
    assert set(actions(later).values()) == {"pause"}
    assert [a.rule for a in later.alerts] == ["pain-flare"]
    assert "adverse event" in later.alerts[0].message


# -- new-pain (tolerance 0 in the low-back-pain seed) -------------------------------------------


def lbp_with(name: str, rising_days: dict[int, tuple[float, float, float]]) -> list[p.Outcome]:
    """The seed's full week, with `name`'s pain on some days replaced."""
    records = []
    for o in lbp_sessions():
        day = (o.date - on(1, 0)).days
        if o.exercise == name and day in rising_days:
            before, during, after = rising_days[day]
            o = o.model_copy(
                update={"pain_before": before, "pain_during": during, "pain_after": after}
            )
        records.append(o)
    return records


def test_new_pain_not_triggered_when_pain_stays_at_the_level_before(
    lbp: p.CompiledProgram,
) -> None:
    result = lbp.step(enroll(lbp), lbp_with("bridge", {0: (3, 3, 3), 2: (3, 2, 3)}))
    assert actions(result) == dict.fromkeys(LBP, "progress")
    assert not any(m.rule == "new-pain" for d in result.decisions for m in d.matches)
    assert result.prescription.flags == ()


@pytest.mark.parametrize("pain", [(2, 3, 2), (2, 2, 3), (0, 1, 0)])
def test_new_pain_once_regresses_that_exercise_and_flags(
    lbp: p.CompiledProgram, pain: tuple[float, float, float]
) -> None:
    result = lbp.step(enroll(lbp), lbp_with("bridge", {2: pain}))
    bridge = decision(result, "bridge")
    assert (bridge.action, bridge.rule, bridge.status) == ("regress", "new-pain", "active")
    assert bridge.dose_after == p.Dose(sets=1, reps=5, hold_s=4)  # double: hold 5 -> 4
    assert match(bridge, "new-pain").values == {"sessions": 1, "largest_rise": 1, "tolerance": 0}
    assert ("review", "bridge", "new-pain") in flags(result)
    assert actions(result) == {
        "pelvic-tilt": "progress",
        "knee-to-chest": "progress",
        "bridge": "regress",
    }
    assert result.prescription.status == "active"
    assert result.alerts == ()


def test_new_pain_twice_on_one_day_is_one_session(lbp: p.CompiledProgram) -> None:
    records = lbp_with("bridge", {2: (2, 3, 3)})
    records.append(outcome("bridge", day=2, reps=[5], hold_s=5, pain=(2, 4, 3)))
    bridge = decision(lbp.step(enroll(lbp), records), "bridge")
    assert bridge.action == "regress"
    assert match(bridge, "new-pain").values["sessions"] == 1


def test_new_pain_in_two_sessions_pauses_that_exercise(lbp: p.CompiledProgram) -> None:
    result = lbp.step(enroll(lbp), lbp_with("bridge", {0: (2, 3, 2), 4: (2, 2, 4)}))
    bridge = decision(result, "bridge")
    assert (bridge.action, bridge.rule, bridge.status) == ("pause", "new-pain", "paused")
    assert bridge.dose_after == bridge.dose_before
    assert match(bridge, "new-pain").values == {"sessions": 2, "largest_rise": 2, "tolerance": 0}
    assert ("review", "bridge", "new-pain") in flags(result)
    assert [a.rule for a in result.alerts] == ["new-pain"]
    nxt = result.prescription
    assert nxt.status == "active"  # only that exercise stops
    assert {n: s.status for n, s in nxt.exercises.items()} == {
        "pelvic-tilt": "active",
        "knee-to-chest": "active",
        "bridge": "paused",
    }

    week2 = lbp.step(nxt, lbp_sessions(week=2, doses={"pelvic-tilt": {"reps": [6], "hold_s": 5}}))
    bridge = decision(week2, "bridge")
    assert (bridge.action, bridge.rule, bridge.status) == ("pause", "awaiting-clinician", "paused")
    assert decision(week2, "pelvic-tilt").action == "progress"
    assert week2.prescription.exercises["bridge"].status == "paused"


@pytest.mark.parametrize(("during", "action"), [(3, "progress"), (4, "regress")])
def test_new_pain_tolerance_parameter(during: float, action: str) -> None:
    compiled = compile_program(hold_exercise(), safety={"new-pain": {"tolerance": 1}})
    records = [*sessions(days=(0, 2), **TILT), outcome(day=4, pain=(2, during, 2), **TILT)]
    assert decision(compiled.step(enroll(compiled), records)).action == action


# -- pain-monitoring (defaults: max_during 5, weekly_increase 1.0) --------------------------------


@pytest.fixture
def monitored() -> p.CompiledProgram:
    return two_exercises({"pain-monitoring": {}})


@pytest.mark.parametrize(("during", "action"), [(4, "progress"), (5, "progress"), (6, "regress")])
def test_pain_monitoring_pain_during_may_reach_max_during(
    monitored: p.CompiledProgram, during: float, action: str
) -> None:
    records = both(pain=3)
    records.append(outcome("bridge", day=6, pain=(3, during, 3), **TILT))
    result = monitored.step(enroll(monitored), records)
    found = decision(result, "bridge")
    assert found.action == action
    if action == "regress":
        assert found.rule == "pain-monitoring"
        assert found.dose_after == p.Dose(sets=1, reps=5, hold_s=4)
        assert match(found, "pain-monitoring").values == {"max_during": 6, "accepted": 5}
    assert decision(result, "tilt").action == "progress"  # only that exercise


def test_pain_monitoring_max_during_parameter() -> None:
    compiled = two_exercises({"pain-monitoring": {"max_during": 3}})
    records = both(pain=(2, 3, 2))
    assert set(actions(compiled.step(enroll(compiled), records)).values()) == {"progress"}
    records.append(outcome("tilt", day=6, pain=(2, 4, 2), **TILT))
    assert decision(compiled.step(enroll(compiled), records), "tilt").action == "regress"


@pytest.mark.parametrize(("morning", "held"), [(2, False), (3, False), (4, True)])
def test_pain_monitoring_next_morning_above_that_days_pain_before_holds_all(
    monitored: p.CompiledProgram, morning: float, held: bool
) -> None:
    records = both(pain=3)
    records.append(outcome("tilt", day=2, pain=3, pain_next_morning=morning, **TILT))
    result = monitored.step(enroll(monitored), records)
    if held:
        for found in result.decisions:
            assert (found.action, found.rule) == ("hold", "pain-monitoring")
            assert found.dose_after == found.dose_before
            assert match(found, "pain-monitoring").values == {"next_morning": 4, "pain_before": 3}
        assert result.prescription.flags == ()  # a hold, not a flag
    else:
        assert set(actions(result).values()) == {"progress"}


@pytest.mark.parametrize(("morning", "held"), [(3, False), (4, True)])
def test_pain_monitoring_next_morning_pain_report(
    monitored: p.CompiledProgram, morning: float, held: bool
) -> None:
    # Pain before was 3 on Wednesday; the patient logs Thursday morning's pain.
    records = [*both(pain=3), report(morning, day=3, context="morning")]
    result = monitored.step(enroll(monitored), records)
    assert set(actions(result).values()) == ({"hold"} if held else {"progress"})


def pain_week(week: int, pain: float, reports: tuple[float, ...]) -> list[p.Record]:
    """18 scores of `pain` (2 exercises x 3 sessions x before/during/after) and reports."""
    records: list[p.Record] = list(both(week=week, pain=pain))
    records += [report(r, week=week, day=5 + i, context="other") for i, r in enumerate(reports)]
    return records


@pytest.mark.parametrize(
    ("reports", "mean", "held"),
    [
        ((3, 3), 3.0, True),  # up by exactly 1.0 from 2.0
        ((4, 4), 3.1, True),
        ((2, 2), 2.9, False),  # up by 0.9
    ],
)
def test_pain_monitoring_weekly_mean_rise_holds_all_and_flags(
    reports: tuple[float, ...], mean: float, held: bool
) -> None:
    compiled = two_exercises({"pain-monitoring": {}})
    week1 = compiled.step(enroll(compiled), pain_week(1, 2, (2, 2)))
    assert week1.prescription.history.mean_pain == 2.0
    records = [
        o.model_copy(update={"hold_s": 6}) if isinstance(o, p.Outcome) else o
        for o in pain_week(2, 3, reports)
    ]
    week2 = compiled.step(week1.prescription, records)
    assert week2.prescription.history.mean_pain == mean
    if held:
        for found in week2.decisions:
            assert (found.action, found.rule) == ("hold", "pain-monitoring")
            assert match(found, "pain-monitoring").values == {
                "mean_pain": mean,
                "previous_mean_pain": 2.0,
            }
        assert ("review", None, "pain-monitoring") in flags(week2)
    else:
        assert set(actions(week2).values()) == {"progress"}
        assert week2.prescription.flags == ()


def test_pain_monitoring_weekly_mean_rise_of_exactly_one_from_a_decimal_mean() -> None:
    # Week 1: 18 scores of 1 and two reports of 4: mean 26 / 20 = 1.3.
    # Week 2: 18 scores of 2 and two reports of 5: mean 46 / 20 = 2.3, up by exactly 1.0.
    compiled = two_exercises({"pain-monitoring": {}})
    week1 = compiled.step(enroll(compiled), pain_week(1, 1, (4, 4)))
    assert week1.prescription.history.mean_pain == 1.3
    records = [
        o.model_copy(update={"hold_s": 6}) if isinstance(o, p.Outcome) else o
        for o in pain_week(2, 2, (5, 5))
    ]
    week2 = compiled.step(week1.prescription, records)
    assert week2.prescription.history.mean_pain == 2.3
    assert set(actions(week2).values()) == {"hold"}
    assert ("review", None, "pain-monitoring") in flags(week2)


def test_pain_monitoring_first_week_has_no_previous_mean(monitored: p.CompiledProgram) -> None:
    result = monitored.step(enroll(monitored), both(pain=4))
    assert set(actions(result).values()) == {"progress"}


# -- adherence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "action"), [((0, 2, 4), "hold"), ((0, 2, 4, 6), "progress")])
def test_adherence_min_sessions_holds(days: tuple[int, ...], action: str) -> None:
    # Three met sessions progress the strategy, but the clinic asks for four.
    compiled = compile_program(hold_exercise(), safety={"adherence": {"min_sessions": 4}})
    result = compiled.step(enroll(compiled), sessions(days=days, **TILT))
    found = decision(result)
    assert found.action == action
    if action == "hold":
        assert found.rule == "adherence"
        assert match(found, "adherence").values == {"sessions": 3, "min_sessions": 4}
        assert match(found, "linear").action == "progress"
    else:
        assert not any(m.rule == "adherence" for m in found.matches)


def test_adherence_default_min_sessions_is_sessions_required(lbp: p.CompiledProgram) -> None:
    result = lbp.step(enroll(lbp), lbp_sessions(days=(0, 3)))
    for found in result.decisions:
        assert found.action == "hold"
        assert match(found, "adherence").values == {"sessions": 2, "min_sessions": 3}


def test_adherence_counts_logged_sessions_even_unscored() -> None:
    compiled = compile_program(hold_exercise(), safety={"adherence": {"min_sessions": 4}})
    records = [*sessions(**TILT), outcome(day=6, pain=None, **TILT)]
    found = decision(compiled.step(enroll(compiled), records))
    assert (found.action, found.rule) == ("progress", "linear")


def test_adherence_one_empty_week_holds_without_regress(lbp: p.CompiledProgram) -> None:
    week1 = lbp.step(enroll(lbp), [])
    assert week1.prescription.history.weeks_without_sessions == 1
    for found in week1.decisions:
        assert found.action == "hold"
        assert found.dose_after == found.dose_before
        assert not any(m.action == "regress" for m in found.matches)
    assert week1.prescription.flags == ()


def test_adherence_two_empty_weeks_regress_every_exercise_and_flag(lbp: p.CompiledProgram) -> None:
    week1 = lbp.step(enroll(lbp), [])
    week2 = lbp.step(week1.prescription, [])
    assert week2.prescription.history.weeks_without_sessions == 2
    for found in week2.decisions:
        assert (found.action, found.rule) == ("regress", "adherence")
        assert applied(found).values == {"weeks_without_sessions": 2}
        assert applied(found).exercise is None  # a program-level finding
    doses = {n: s.dose for n, s in week2.prescription.exercises.items()}
    assert doses == {
        "pelvic-tilt": p.Dose(sets=1, reps=5, hold_s=4),
        "knee-to-chest": p.Dose(reps=5, hold_s=3, side="each"),  # 5 - 5 s, floor 3 s
        "bridge": p.Dose(sets=1, reps=5, hold_s=4),
    }
    assert ("review", None, "adherence") in flags(week2)


def test_adherence_an_empty_week_between_logged_weeks_does_not_regress(
    lbp: p.CompiledProgram,
) -> None:
    week1 = lbp.step(enroll(lbp), lbp_sessions(days=(0,)))
    assert week1.prescription.history.weeks_without_sessions == 0
    week2 = lbp.step(week1.prescription, [])
    assert set(actions(week2).values()) == {"hold"}
    assert week2.prescription.history.weeks_without_sessions == 1


def test_adherence_a_week_of_skipped_sessions_is_an_empty_week(lbp: p.CompiledProgram) -> None:
    week1 = lbp.step(enroll(lbp), [])
    skipped = [o.model_copy(update={"skipped": True}) for o in lbp_sessions(week=2)]
    week2 = lbp.step(week1.prescription, skipped)
    assert week2.prescription.history.weeks_without_sessions == 2
    assert set(actions(week2).values()) == {"regress"}


# -- missing-data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pain", "counted"),
    [
        ((2, 2, 2), True),
        ((2, None, 2), True),  # before and after
        ((2, 2, None), True),  # before and during
        ((2, None, None), False),  # before only
        ((None, 2, 2), False),  # no pain before
        (None, False),
    ],
)
def test_missing_data_unscored_outcomes_do_not_count_and_are_reported(
    tiny: p.CompiledProgram, pain: Any, counted: bool
) -> None:
    records = [*sessions(days=(0, 2), **TILT), outcome(day=4, pain=pain, **TILT)]
    found = decision(tiny.step(enroll(tiny), records))
    assert found.action == ("progress" if counted else "hold")
    notes = [m for m in found.matches if m.rule == "missing-data"]
    if counted:
        assert notes == []
    else:
        [note] = notes
        assert (note.action, note.applied, note.exercise) == (None, False, EX)
        assert note.values == {"unscored": 1}
        assert "without pain scores" in note.reason


def test_missing_data_flags_a_week_of_sessions_without_any_pain_score(
    tiny: p.CompiledProgram,
) -> None:
    unscored = [outcome(day=d, pain=None, **TILT) for d in (0, 2, 4)]
    result = tiny.step(enroll(tiny), unscored)
    assert decision(result).action == "hold"
    [flag] = [f for f in result.prescription.flags if f.rule == "missing-data"]
    assert flag.code == "review" and "3 sessions done this week, none with pain" in flag.message
    # One scored session is enough not to flag (the others are still not counted).
    some = tiny.step(enroll(tiny), [*unscored[:2], outcome(day=4, pain=2, **TILT)])
    assert not [f for f in some.prescription.flags if f.rule == "missing-data"]


def test_missing_data_skipped_outcomes_are_not_reported_as_unscored(
    tiny: p.CompiledProgram,
) -> None:
    records = [*sessions(**TILT), outcome(day=5, pain=None, skipped=True)]
    found = decision(tiny.step(enroll(tiny), records))
    assert found.action == "progress"
    assert not any(m.rule == "missing-data" for m in found.matches)


def test_missing_data_unknown_exercise_is_set_aside_and_reported(lbp: p.CompiledProgram) -> None:
    # Two pelvic tilts, the third logged under a misspelt id.
    records = [
        o for o in lbp_sessions() if not (o.exercise == "pelvic-tilt" and o.date == on(1, 4))
    ]
    records.append(outcome("pelvic-tilts", day=4, **TILT))
    result = lbp.step(enroll(lbp), records)
    [aside] = result.set_aside
    assert "unknown exercise 'pelvic-tilts'" in aside.reason
    tilt = decision(result, "pelvic-tilt")
    assert tilt.action == "hold"
    assert tilt.dose_after == tilt.dose_before
    for found in result.decisions:
        note = match(found, "missing-data")
        assert (note.action, note.applied, note.exercise) == (None, False, None)
        assert note.values == {"set_aside": 1}
        assert "unknown exercise 'pelvic-tilts'" in note.reason


def test_a_flare_dated_before_the_enrollment_still_reaches_safety(tiny: p.CompiledProgram) -> None:
    # A year typed wrong: 2025 for 2026. Not counted towards progress, but the pain of 9
    # and the adverse event pause week 1 all the same.
    early = on(1, 1).replace(year=on(1, 1).year - 1)
    typo = p.PainReport(date=early, pain=9, context="other")
    fall = outcome(day=2, pain=1, adverse_event=True, **TILT).model_copy(update={"date": early})
    for record in (typo, fall):
        result = tiny.step(enroll(tiny), [*sessions(**TILT), record])
        assert result.prescription.status == "paused" and result.alerts
        [aside] = result.set_aside
        assert "still count for safety" in aside.reason
    # In a later week a record of another week is only set aside (the replay gave that week
    # its own records).
    week2 = tiny.step(
        tiny.step(enroll(tiny), sessions(**TILT)).prescription, [*sessions(week=2, **TILT), typo]
    )
    assert week2.prescription.status == "active"


@pytest.mark.parametrize(
    ("days", "action", "set_aside"),
    [
        ((0, 2, 6), "progress", 0),  # the last day of the week
        ((0, 2, 7), "hold", 1),  # the first day of the next week
        ((-1, 0, 2), "hold", 1),  # the day before the week
    ],
)
def test_missing_data_dates_outside_the_week_are_set_aside(
    tiny: p.CompiledProgram, days: tuple[int, ...], action: str, set_aside: int
) -> None:
    result = tiny.step(enroll(tiny), sessions(days=days, **TILT))
    found = decision(result)
    assert found.action == action
    assert len(result.set_aside) == set_aside
    if set_aside:
        assert "dated outside week 1" in result.set_aside[0].reason
        assert match(found, "missing-data").values == {"set_aside": 1}
    else:
        assert not any(m.rule == "missing-data" for m in found.matches)


def test_missing_data_a_flare_dated_outside_the_week_is_set_aside(tiny: p.CompiledProgram) -> None:
    result = tiny.step(enroll(tiny), [*sessions(**TILT), report(9, day=7)])
    assert result.prescription.status == "active"
    assert len(result.set_aside) == 1
    assert decision(result).action == "progress"


# -- most conservative wins -------------------------------------------------------------------


def test_regress_beats_progress_and_every_match_is_kept(lbp: p.CompiledProgram) -> None:
    result = lbp.step(enroll(lbp), lbp_with("pelvic-tilt", {4: (1, 2, 1)}))
    tilt = decision(result, "pelvic-tilt")
    assert (tilt.action, tilt.rule) == ("regress", "new-pain")
    assert {(m.rule, m.action, m.applied) for m in tilt.matches} == {
        ("new-pain", "regress", True),
        ("double", "progress", False),
    }
    assert_one_applied_everywhere(result)


def test_pause_beats_regress_hold_and_progress(lbp: p.CompiledProgram) -> None:
    records = lbp_with("bridge", {2: (2, 3, 2)})
    records = [o for o in records if not (o.exercise == "pelvic-tilt" and o.date == on(1, 4))]
    records.append(report(7, day=5))
    result = lbp.step(enroll(lbp), records)
    bridge, tilt = decision(result, "bridge"), decision(result, "pelvic-tilt")
    assert {(m.rule, m.action, m.applied) for m in bridge.matches} == {
        ("pain-flare", "pause", True),
        ("new-pain", "regress", False),
        ("double", "progress", False),
    }
    assert {(m.rule, m.action, m.applied) for m in tilt.matches} == {
        ("pain-flare", "pause", True),
        ("adherence", "hold", False),
        ("double", "hold", False),
    }
    assert set(actions(result).values()) == {"pause"}
    assert_one_applied_everywhere(result)


def test_regress_beats_a_hold_of_all_exercises(monitored: p.CompiledProgram) -> None:
    records = both(pain=2)
    records.append(outcome("bridge", day=2, pain=2, pain_next_morning=3, **TILT))
    records.append(outcome("bridge", day=6, pain=(2, 6, 2), **TILT))
    result = monitored.step(enroll(monitored), records)
    bridge = decision(result, "bridge")
    assert (bridge.action, bridge.rule) == ("regress", "pain-monitoring")
    assert [(m.action, m.applied) for m in bridge.matches if m.rule == "pain-monitoring"] == [
        ("regress", True),
        ("hold", False),
    ]
    assert match(bridge, "linear").action == "progress"
    assert (decision(result, "tilt").action, decision(result, "tilt").rule) == (
        "hold",
        "pain-monitoring",
    )
    assert_one_applied_everywhere(result)


def test_hold_beats_progress() -> None:
    compiled = compile_program(hold_exercise(), safety={"adherence": {"min_sessions": 4}})
    result = compiled.step(enroll(compiled), sessions(**TILT))
    found = decision(result)
    assert found.action == "hold"
    assert {(m.rule, m.action, m.applied) for m in found.matches} == {
        ("adherence", "hold", True),
        ("linear", "progress", False),
    }
    assert dose_of(result) == p.Dose(sets=1, reps=5, hold_s=5)


def test_notes_are_kept_but_never_applied(lbp: p.CompiledProgram) -> None:
    records = [*lbp_sessions(), outcome("bridge", day=6, pain=None, **TILT)]
    records.append(outcome("plank", day=1, duration_s=[30], pain=2))
    result = lbp.step(enroll(lbp), records)
    bridge = decision(result, "bridge")
    notes = [m for m in bridge.matches if m.action is None]
    assert {tuple(sorted(m.values)) for m in notes} == {("set_aside",), ("unscored",)}
    assert not any(m.applied for m in notes)
    assert (bridge.action, bridge.rule) == ("progress", "double")
    assert_one_applied_everywhere(result)
