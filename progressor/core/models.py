"""Typed values at progressor's edges: programs, logs, prescriptions and decisions.

Models that describe input forbid unknown keys, so a typo is an error rather than a silently
ignored setting. Values that flow out of the engine are frozen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from itertools import chain
from operator import itemgetter
from typing import Annotated, Any, ClassVar, Literal, Self

from packaging.version import InvalidVersion, Version
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from progressor.core._fast import dict_setter, fields_of
from progressor.core.rounding import round_half_up, round_whole

Action = Literal["progress", "hold", "regress", "pause"]
Status = Literal["active", "paused"]
Scalar = str | int | float | bool | None

#: Most conservative wins: a higher number beats a lower one.
SEVERITY: dict[str, int] = {"progress": 0, "hold": 1, "regress": 2, "pause": 3}

INT_FIELDS = ("sets", "reps", "hold_s", "duration_s")
FLOAT_FIELDS = ("load_kg", "distance_m")
NUMERIC_FIELDS = INT_FIELDS + FLOAT_FIELDS

Pain = Field(default=None, ge=0, le=10)


def _day_of(moment: dt.datetime) -> dt.date:
    # The day as written, never converted to another time zone: a session logged at
    # 23:30+02:00 happened on the patient's own calendar day, whatever the clinic's zone.
    return moment.date()


class _DayOrDateTime:
    """A record's day: `2026-11-04`, or a date-time (`2026-11-04T09:30:00`,
    `2026-11-05T09:30:00Z`, `2026-11-05 09:30+02:00`) whose day is taken as written."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # pydantic-core's own validators, the day first (left to right: a plain day, the
        # usual case, is read without a Python call; a date-time with a time is no day).
        date_time = core_schema.chain_schema(
            [
                core_schema.str_schema(),
                core_schema.no_info_after_validator_function(
                    _day_of, core_schema.datetime_schema()
                ),
            ]
        )
        return core_schema.union_schema(
            [core_schema.date_schema(), date_time],
            mode="left_to_right",
            custom_error_type="day_type",
            custom_error_message="Input should be a day or a date-time",
            serialization=core_schema.plain_serializer_function_ser_schema(
                dt.date.isoformat, when_used="json"
            ),
        )


#: A record's date field: a day, or the day of a date-time as written.
Day = Annotated[dt.date, _DayOrDateTime()]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PlainModel:
    """Pydantic's validation with plain attribute reads, for the values the step reads most.

    Doses, outcomes and pain reports are pydantic dataclasses, not BaseModels. The weekly step
    reads them field by field, hundreds of times per patient, and reading a BaseModel's field
    costs about five times a plain read (BaseModel defines __getattr__, which keeps CPython
    from specialising the read; bench/step.py shows the difference). Validation is the same
    pydantic-core validation; these methods give them the BaseModel methods callers use.
    """

    __adapter: ClassVar[TypeAdapter[Any]]
    model_fields: ClassVar[dict[str, FieldInfo]]

    @classmethod
    def _adapter(cls) -> TypeAdapter[Any]:
        adapter: TypeAdapter[Any] | None = cls.__dict__.get("_PlainModel__adapter")
        if adapter is None:  # built on first use: the class must be a finished dataclass
            adapter = TypeAdapter(cls)
            cls.__adapter = adapter
        return adapter

    #: Fields that take numbers (or lists of numbers): true or false there is refused by
    #: model_validate and model_validate_json (pydantic would read true as 1, and a
    #: "pain_during": true is no pain score of 1/10).
    _numbers: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        if cls._numbers and isinstance(data, dict):
            _refuse_booleans(cls, data)
        value: Self = cls._adapter().validate_python(data)
        return value

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        if cls._numbers and (
            "true" in data or "false" in data
            if isinstance(data, str)
            else (b"true" in data or b"false" in data)
        ):
            parsed = json.loads(data)
            if isinstance(parsed, dict):
                _refuse_booleans(cls, parsed)
        value: Self = cls._adapter().validate_json(data)
        return value

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """As BaseModel.model_dump (mode, exclude_defaults, exclude_none, ...)."""
        data: dict[str, Any] = self._adapter().dump_python(self, **options)
        return data

    def model_dump_json(self, **options: Any) -> str:
        return self._adapter().dump_json(self, **options).decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with some fields changed; unlike BaseModel.model_copy, the result is validated."""
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


def _refuse_booleans(cls: type[_PlainModel], data: dict[str, Any]) -> None:
    errors: list[Any] = []
    for key in cls._numbers:
        value = data.get(key)
        if isinstance(value, bool):
            errors.append({"type": "float_type", "loc": (key,), "input": value})
        elif isinstance(value, list | tuple):
            errors.extend(
                {"type": "float_type", "loc": (key, i), "input": item}
                for i, item in enumerate(value)
                if isinstance(item, bool)
            )
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)


# Sets a plain model's fields in one go (progressor.core._fast.dict_setter).
_set_instance_dict = dict_setter(_PlainModel)

#: pydantic's error types for a key a model does not have: BaseModels report extra_forbidden,
#: dataclasses (doses, log records) unexpected_keyword_argument.
UNKNOWN_KEY_ERRORS = frozenset({"extra_forbidden", "unexpected_keyword_argument"})

_PLAIN = ConfigDict(extra="forbid")


@pydantic_dataclass(frozen=True, kw_only=True, config=_PLAIN)
class Limits(_PlainModel):
    """A floor or ceiling: per numeric dose field, the lowest or highest value allowed."""

    sets: int | None = Field(default=None, ge=1)
    reps: int | None = Field(default=None, ge=1)
    hold_s: int | None = Field(default=None, ge=1)
    duration_s: int | None = Field(default=None, ge=1)
    load_kg: float | None = Field(default=None, ge=0)
    distance_m: float | None = Field(default=None, ge=0)

    def values(self) -> dict[str, float]:
        """The fields that are set, by name."""
        return {k: v for k in NUMERIC_FIELDS if (v := getattr(self, k)) is not None}


@pydantic_dataclass(frozen=True, kw_only=True, config=_PLAIN)
class Dose(Limits):
    """What is prescribed for one exercise; which fields apply is the exercise type's business."""

    side: Literal["each"] | None = None
    variant: str | None = None

    def with_value(self, name: str, value: float) -> Dose:
        """A copy with one numeric field changed (whole numbers for counts and seconds)."""
        # Half up, as a clinician would round (progressor.core.rounding: the one rule).
        values = {**fields_of(self)}
        # A Dose is valid once built (by validation, or trusted_dose on checked values), so only
        # the changed field needs the check Limits would make (a whole number >= 1 for counts
        # and seconds, a float >= 0 otherwise); anything unusual takes pydantic's path and its
        # error.
        if name in INT_FIELDS:
            values[name] = whole = round_whole(value)
            valid = whole >= 1
        else:
            values[name] = value = round_half_up(value, 2)
            valid = name in FLOAT_FIELDS and type(value) is float and value >= 0
        if valid and type(self) is Dose:
            dose = object.__new__(Dose)
            _set_instance_dict(dose, values)
            return dose
        return Dose(**values)

    def same(self, other: Dose) -> bool:
        """The same values in every field (a Ladder's Dose subclass included; cheaper than ==)."""
        return self is other or fields_of(self) == fields_of(other)

    def describe(self) -> str:
        """A short human reading: '2 x 5 reps, hold 5 s, each side'."""
        parts = []
        if self.variant:
            parts.append(self.variant)
        sets, reps = self.sets, self.reps
        if reps is not None:
            parts.append(f"{reps} reps" if sets is None else f"{sets} x {reps} reps")
        if self.hold_s is not None:
            parts.append(f"hold {self.hold_s} s")
        if self.duration_s is not None:
            # "2 x 30 s", or "898 s" for a single bout (never "1 sets").
            several = reps is None and sets is not None and sets > 1
            parts.append(f"{sets} x {self.duration_s} s" if several else f"{self.duration_s} s")
        elif reps is None and sets is not None:
            parts.append("1 set" if sets == 1 else f"{sets} sets")
        if self.load_kg is not None:
            parts.append(f"{self.load_kg:g} kg")
        if self.distance_m is not None:
            parts.append(f"{self.distance_m:g} m")
        if self.side == "each":
            parts.append("each side")
        return ", ".join(parts)


def trusted_dose(values: dict[str, Any]) -> Dose:
    """A Dose from values the caller has already checked (progressor.core._fast.trusted):
    every field, in declaration order, of the exact type validation gives."""
    dose = object.__new__(Dose)
    _set_instance_dict(dose, values)
    return dose


class Progression(BaseModel):
    """The strategy that progresses an exercise; other keys are that strategy's parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    strategy: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


#: What a program's or an exercise's id may hold, as a pattern and in words.
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
ID_WORDS = (
    "an id holds only lowercase letters a-z, digits and dashes, and starts with a letter or a digit"
)
#: pydantic's error type for two exercises with one id; its context names the second.
DUPLICATE_ID = "duplicate_id"


class Exercise(_Frozen):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    type: str
    instructions: tuple[str, ...] = ()
    dose: Dose
    floor: Limits = Limits()
    ceiling: Limits = Limits()
    progression: Progression
    sessions_required: int | None = Field(default=None, ge=1, le=14)


class PluginRequirement(_Frozen):
    """A plugin package a program needs, with an optional version range (PEP 440)."""

    name: str = Field(min_length=1)
    version: str = ""


class Program(_Frozen):
    """A versioned program definition, as read from TOML."""

    id: str = Field(pattern=ID_PATTERN)
    version: str
    title: str
    description: str = ""
    condition: str = ""
    sessions_required: int = Field(default=3, ge=1, le=14)
    requires: tuple[PluginRequirement, ...] = ()
    safety: dict[str, dict[str, Any]] = Field(default_factory=dict)
    exercises: tuple[Exercise, ...] = Field(min_length=1)

    _source: str | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @field_validator("exercises")
    @classmethod
    def _unique_ids(cls, exercises: tuple[Exercise, ...]) -> tuple[Exercise, ...]:
        seen: set[str] = set()
        for index, exercise in enumerate(exercises):
            if exercise.id in seen:
                raise PydanticCustomError(
                    DUPLICATE_ID,
                    "exercise id '{id}' is used twice",
                    {"id": exercise.id, "index": index},
                )
            seen.add(exercise.id)
        return exercises

    @field_validator("version")
    @classmethod
    def _a_version(cls, version: str) -> str:
        try:
            Version(version)
        except InvalidVersion:
            raise ValueError(
                f"{version!r} is not a version: numbers and dots, e.g. '1.0.0' or '2.1' "
                "(PEP 440: '1.0.0rc1' and '2.1.post1' are versions too)"
            ) from None
        return version

    @property
    def source(self) -> str | None:
        """The file the program was read from, if any."""
        return self._source

    def exercise(self, exercise_id: str) -> Exercise:
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        raise KeyError(exercise_id)


@pydantic_dataclass(frozen=True, kw_only=True, config=_PLAIN)
class Outcome(_PlainModel):
    """One logged performance of one exercise in one session."""

    _numbers: ClassVar[tuple[str, ...]] = (
        "reps",
        "hold_s",
        "duration_s",
        "load_kg",
        "pain_before",
        "pain_during",
        "pain_after",
        "pain_next_morning",
        "rpe",
    )

    kind: Literal["outcome"] = "outcome"
    patient: str | None = None
    date: Day
    exercise: str
    side: Literal["left", "right"] | None = None
    reps: tuple[Annotated[int, Field(ge=0)], ...] = ()
    hold_s: float | None = Field(default=None, ge=0)
    duration_s: tuple[Annotated[float, Field(ge=0)], ...] = ()
    load_kg: float | None = Field(default=None, ge=0)
    pain_before: float | None = Pain
    pain_during: float | None = Pain
    pain_after: float | None = Pain
    pain_next_morning: float | None = Pain
    rpe: float | None = Field(default=None, ge=0, le=10)
    skipped: bool = False
    adverse_event: bool = False
    flags: tuple[str, ...] = ()
    note: str = ""

    @model_validator(mode="after")
    def _one_zero(self) -> Self:
        # -0.0 passes ge=0 but sorts equal to 0.0 while printing differently: keep one zero.
        # One check per record (field validators would cost a Python call per field), and a
        # closer look only at a record with a zero at all.
        positive_zeros(self)
        return self

    @property
    def scored(self) -> bool:
        """Carries the pain scores a progression needs: before, and during or after."""
        # week._exercise_week inlines this test (it runs for every outcome): change both.
        return self.pain_before is not None and (
            self.pain_during is not None or self.pain_after is not None
        )

    def pain_scores(self) -> tuple[float, ...]:
        return tuple(
            p
            for p in (self.pain_before, self.pain_during, self.pain_after, self.pain_next_morning)
            if p is not None
        )


#: Outcome's numbers that are one number, not a list: a -0.0 among them is read as 0.
_SIGNED_ZERO_FIELDS = tuple(f for f in Outcome._numbers if f not in ("reps", "duration_s"))
_signed_zero_values = itemgetter(*_SIGNED_ZERO_FIELDS)


def positive_zeros(outcome: Outcome) -> None:
    """Make each -0.0 of `outcome`'s single numbers 0.0, in place (while it is being built:
    frozen after that)."""
    fields = fields_of(outcome)
    if 0 not in _signed_zero_values(fields):
        return
    for name in _SIGNED_ZERO_FIELDS:
        value = fields[name]
        if value == 0 and value is not None and math.copysign(1.0, value) < 0:
            object.__setattr__(outcome, name, 0.0)


def negative_zero_in(outcomes: Iterable[dict[str, Any]]) -> bool:
    """Whether Outcomes' fields (their __dict__s) hold a -0.0 that `_one_zero` makes 0.0: for
    a reader that builds many outcomes at once and corrects only when one does."""
    numbers = list(chain.from_iterable(map(_signed_zero_values, outcomes)))
    if 0 not in numbers:  # (one C loop: the usual case)
        return False
    return any(v == 0 and v is not None and math.copysign(1.0, v) < 0 for v in numbers)


@pydantic_dataclass(frozen=True, kw_only=True, config=_PLAIN)
class PainReport(_PlainModel):
    """A standalone pain score logged on a day: a flare, a next morning."""

    _numbers: ClassVar[tuple[str, ...]] = ("pain",)

    kind: Literal["pain"] = "pain"
    patient: str | None = None
    date: Day
    pain: float = Field(ge=0, le=10)
    context: Literal["flare", "morning", "other"] = "other"
    flags: tuple[str, ...] = ()
    note: str = ""

    @field_validator("pain")
    @classmethod
    def _no_negative_zero(cls, value: float) -> float:
        return value + 0.0


for _plain in (Limits, Dose, Outcome, PainReport):
    _plain.model_fields = vars(_plain)["__pydantic_fields__"]


Record = Outcome | PainReport


class SetAside(_Frozen):
    """A log record that was not used, and why."""

    source: str
    line: int | None = None
    reason: str
    record: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.reason}" + (f" ({self.record})" if self.record else "")


#: The longest patient id accepted: room for any clinic's record number or a UUID.
PATIENT_ID_MAX = 128


def ids_alike(patient: str, others: Iterable[str]) -> list[str]:
    """The ids among `others` that differ from `patient` in case or surrounding spaces only
    (`P1` or ` p1 ` for `p1`): the same patient written differently, in all likelihood."""
    loose = patient.strip().casefold()
    return [other for other in others if other != patient and other.strip().casefold() == loose]


def ids_meant(patient: str, others: Iterable[str]) -> list[str]:
    """The ids among `others` alike to `patient` (ids_alike) that can be a patient's (one of
    " p1", set aside, means no one), in their order."""
    return [other for other in ids_alike(patient, others) if patient_id_problem(other) is None]


def same_id_loosely(patient: str, others: Iterable[str]) -> str | None:
    """The one id among `others` alike to `patient` (ids_alike), or None when there is none
    or more than one (ids that could be no patient's left out). A record of an id that is not
    enrolled gives its pain to that patient's safety rules, and the reason it is set aside
    names them; ids that differ otherwise are never guessed at (a pain put on the wrong
    patient's chart is a second mistake)."""
    alike = ids_meant(patient, others)
    return alike[0] if len(alike) == 1 else None


def patient_id_problem(patient: str) -> str | None:
    """Why `patient` cannot be a patient id, or None when it can.

    An id names one patient in the store, in datasets, in alerts and on the command line:
    it is not empty, has no leading or trailing spaces, holds only printable characters (no
    tab, newline, NUL or other control or invisible format character) and is at most
    PATIENT_ID_MAX characters long. An id that breaks these rules is easily mistyped apart
    from the patient's own (or printed as nothing), so their weeks would go uncomputed.
    """
    if not patient.strip():
        return "a patient id must not be empty or only spaces"
    if not patient.isprintable():  # (str.isprintable: the plain space is the one space it takes)
        bad = next(c for c in patient if not c.isprintable())
        return f"a patient id must hold printable characters only, not {bad!r}"
    if patient != patient.strip():
        return "a patient id must not start or end with a space"
    if len(patient) > PATIENT_ID_MAX:
        return f"a patient id is at most {PATIENT_ID_MAX} characters, not {len(patient)}"
    return None


#: The latest day a program may start on: the weeks computed after it still fit in a date
#: (a start of 9999-12-31 made week 1's end overflow, a crash where a located error belongs).
LATEST_START = dt.date(9000, 12, 31)
#: A day a program starts on (an enrollment's, a week's, a request's), LATEST_START at most.
StartDay = Annotated[dt.date, Field(le=LATEST_START)]


class Enrollment(_Frozen):
    """A patient on a program from a start date, with optional starting-dose overrides."""

    patient: str
    program: str
    start: StartDay
    overrides: dict[str, Dose] = Field(default_factory=dict)

    @field_validator("patient")
    @classmethod
    def _patient_id(cls, patient: str) -> str:
        # Checked here so that every road that enrolls (the store, datasets, the API)
        # refuses an id that would never be computed.
        problem = patient_id_problem(patient)
        if problem:
            raise PydanticCustomError("patient_id", problem)
        return patient


class ExerciseState(_Frozen):
    """One exercise's place in a prescription; `memory` belongs to its strategy."""

    dose: Dose
    status: Status = "active"
    memory: dict[str, Scalar] = Field(default_factory=dict)


class History(_Frozen):
    """What the rules need to know about weeks before this one."""

    weeks_without_sessions: int = 0
    mean_pain: float | None = None


class Flag(_Frozen):
    """Something a clinician should look at; flags collect without stopping the program."""

    code: str
    rule: str
    plugin: str
    message: str
    exercise: str | None = None


class Alert(_Frozen):
    """A call for the clinician: raised by a pause or an urgent safety rule."""

    patient: str
    week: int
    rule: str
    plugin: str
    message: str
    urgent: bool = False


class Prescription(_Frozen):
    """The doses and statuses of one patient for one week."""

    patient: str
    program: str
    program_version: str
    week: int = Field(ge=1)
    start: StartDay
    status: Status = "active"
    exercises: dict[str, ExerciseState]
    flags: tuple[Flag, ...] = ()
    history: History = History()

    @property
    def end(self) -> dt.date:
        """The first day after this week."""
        return self.start + _WEEK

    @property
    def last_day(self) -> dt.date:
        """The week's last day (a Sunday for a week that starts on a Monday): what a patient
        and a clinician read as the week's end."""
        return self.start + _LAST_DAY


_WEEK = dt.timedelta(days=7)
_LAST_DAY = dt.timedelta(days=6)


class RuleMatch(_Frozen):
    """A rule that matched, what it proposed and the values it saw."""

    rule: str
    plugin: str
    action: Action | None
    reason: str
    exercise: str | None = None
    values: dict[str, Scalar] = Field(default_factory=dict)
    applied: bool = False


class Decision(_Frozen):
    """For one exercise in one week: the action taken, why, and every rule that matched."""

    exercise: str
    action: Action
    rule: str
    plugin: str
    reason: str
    dose_before: Dose
    dose_after: Dose
    status: Status
    matches: tuple[RuleMatch, ...] = ()


class StepResult(_Frozen):
    """The weekly step's answer: next week's prescription and the decisions behind it."""

    prescription: Prescription
    decisions: tuple[Decision, ...]
    alerts: tuple[Alert, ...] = ()
    set_aside: tuple[SetAside, ...] = ()

    @model_validator(mode="after")
    def _one_decision_per_exercise(self) -> StepResult:
        names = [d.exercise for d in self.decisions]
        if len(names) != len(set(names)):
            raise ValueError("a step gives exactly one decision per exercise")
        return self
