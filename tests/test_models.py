"""The models at progressor's edges: what an enrollment accepts as a patient id."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

import progressor
from progressor.core.models import PATIENT_ID_MAX
from tests.conftest import START


def _enroll(patient: str) -> progressor.Enrollment:
    return progressor.Enrollment(patient=patient, program="low-back-pain", start=START)


@pytest.mark.parametrize(
    ("patient", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("\t", "must not be empty"),
        (" anna", "must not start or end with a space"),
        ("anna ", "must not start or end with a space"),
        ("an\tna", "printable characters only, not '\\t'"),
        ("anna\n", "printable characters only, not '\\n'"),
        ("an\x00na", "printable characters only, not '\\x00'"),
        ("an\u200bna", "printable characters only"),  # a zero-width space: invisible
        ("an\u00a0na", "printable characters only"),  # a no-break space looks like a space
        ("x" * (PATIENT_ID_MAX + 1), f"at most {PATIENT_ID_MAX} characters"),
    ],
)
def test_an_enrollment_refuses_a_patient_id_that_would_never_be_computed(
    patient: str, problem: str
) -> None:
    with pytest.raises(ValidationError, match="patient") as info:
        _enroll(patient)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "patient", ["anna", "p0001", "Anna Smith", "Ünal-42", "MRN/2026:17", "x" * PATIENT_ID_MAX]
)
def test_an_enrollment_takes_ordinary_patient_ids(patient: str) -> None:
    assert _enroll(patient).patient == patient


def test_the_patient_id_check_holds_for_json_too() -> None:
    line = '{"patient": "a\\tb", "program": "low-back-pain", "start": "2026-01-05"}'
    with pytest.raises(ValidationError, match="printable characters only"):
        progressor.Enrollment.model_validate_json(line)


def test_a_week_ends_on_its_last_day_the_day_before_the_next_one_starts() -> None:
    compiled = progressor.Engine().compile(progressor.load_program("programs/low-back-pain.toml"))
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    week = compiled.first_week(enrollment)
    assert (week.start, week.last_day, week.end) == (
        START,
        START + dt.timedelta(days=6),
        START + dt.timedelta(days=7),
    )
    assert week.last_day.isoweekday() == 7  # a Monday's week ends on the Sunday
