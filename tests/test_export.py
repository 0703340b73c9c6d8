"""Next week's prescription as a document: a resumed week reads as resumed."""

from __future__ import annotations

import datetime as dt
import tomllib

import progressor
from tests.conftest import START


def _paused(seed: progressor.CompiledProgram) -> progressor.StepResult:
    week1 = seed.first_week(
        progressor.Enrollment(patient="anna", program=seed.program.id, start=START)
    )
    flare = progressor.PainReport(date=START + dt.timedelta(days=1), pain=8, context="flare")
    return seed.step(week1, [flare])


def _exported(
    engine: progressor.Engine, seed: progressor.CompiledProgram, result: progressor.StepResult
) -> dict[str, object]:
    text = engine.registries.exporters["toml"].component.export(seed.program, result)
    return tomllib.loads(text)


def test_a_resumed_week_reads_as_resumed_for_clinician_and_patient(
    engine: progressor.Engine, seed: progressor.CompiledProgram
) -> None:
    paused = _paused(seed)
    resumed = paused.model_copy(update={"prescription": seed.resume(paused.prescription)})
    document = _exported(engine, seed, resumed)
    assert document["status"] == "active"
    exercises = document["exercises"]
    assert isinstance(exercises, dict)
    for exercise in exercises.values():
        assert (exercise["status"], exercise["action"]) == ("active", "resume")
        assert exercise["rule"] == "clinician-resume"
        assert "Stop this exercise" not in exercise["reason"]
        assert exercise["reason"].startswith("Resumed: your physiotherapist resumed")


def test_a_partly_resumed_week_still_pauses_the_rest(
    engine: progressor.Engine, seed: progressor.CompiledProgram
) -> None:
    paused = _paused(seed)
    resumed = paused.model_copy(
        update={"prescription": seed.resume(paused.prescription, ["bridge"])}
    )
    exercises = _exported(engine, seed, resumed)["exercises"]
    assert isinstance(exercises, dict)
    assert exercises["bridge"]["action"] == "resume"
    assert exercises["pelvic-tilt"]["action"] == "pause"
    assert "Stop this exercise" in exercises["pelvic-tilt"]["reason"]
    # Still paused: the document says so as it always did.
    assert _exported(engine, seed, paused)["exercises"]["bridge"]["action"] == "pause"
