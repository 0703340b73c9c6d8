"""The code systems and URLs progressor's FHIR resources use (docs/fhir.md lists them)."""

from __future__ import annotations

BASE = "https://progressor.dev/fhir"
#: An exercise, coded by its id in the program (`pelvic-tilt`): the code of a session
#: Observation and of a CarePlan activity or an ActivityDefinition.
EXERCISE_SYSTEM = f"{BASE}/CodeSystem/exercise"
#: The parts of a session Observation (its components): reps, hold_s, pain_before, ...
OUTCOME_SYSTEM = f"{BASE}/CodeSystem/outcome"
#: A complex extension carrying a dose field by field (sets, reps, hold_s, ...).
DOSE_EXTENSION = f"{BASE}/StructureDefinition/dose"
#: Where a program's PlanDefinition lives: {PLAN_URL}/{program id}, version as its version.
PLAN_URL = f"{BASE}/PlanDefinition"
#: The patient id progressor knows a patient by (a CarePlan's subject identifier).
PATIENT_SYSTEM = f"{BASE}/patient"

LOINC = "http://loinc.org"
#: LOINC 72514-3: Pain severity - 0-10 verbal numeric rating [Score] - Reported.
PAIN_SEVERITY = "72514-3"
UCUM = "http://unitsofmeasure.org"
#: The units a 0-10 pain score may carry (UCUM's annotation {score}, or none at all).
PAIN_UNITS = frozenset({"{score}", "{Score}", "/10", "score"})

#: A session component's unit by field, as UCUM writes it (None: a count or a score).
FIELD_UNITS: dict[str, str | None] = {
    "sets": None,
    "reps": None,
    "hold_s": "s",
    "duration_s": "s",
    "load_kg": "kg",
    "distance_m": "m",
}
