"""The step's fast paths give exactly what pydantic's validation gives.

The engine builds its output models with `progressor.core._fast.trusted` (no validation) from
values it has checked, and `Dose.with_value` skips validation for a plain change (through
`trusted_dose`: doses are pydantic dataclasses, not BaseModels). These tests
hold both to validation, field by field: same keys in the same order, same exact types, same
fields set, JSON, repr, hash and pickle. A pydantic upgrade that changes how models are laid
out fails here rather than in an output. Values from plugins are only trusted when they are
of exact built-in types: anything else is validated, and a bad value fails that plugin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import operator
import pickle
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import progressor as p
from progressor.core._fast import trusted
from progressor.core.models import (
    FLOAT_FIELDS,
    INT_FIELDS,
    NUMERIC_FIELDS,
    Progression,
    trusted_dose,
)
from progressor.core.rounding import round_half_up, round_whole
from progressor.core.week import build_week
from progressor.synth import synthesize_clinic
from tests.conftest import PROGRAMS, START, full_week

DOSE = p.Dose(sets=1, reps=5, hold_s=5)
MATCH = p.RuleMatch(rule="double", plugin="x", action="progress", reason="met", exercise="a")
FLAG = p.Flag(code="review", rule="new-pain", plugin="x", message="rose", exercise="a")
STATE = p.ExerciseState(dose=DOSE, status="active", memory={"streak": 1})
HISTORY = p.History(weeks_without_sessions=0, mean_pain=2.43)
DECISION = p.Decision(
    exercise="a",
    action="progress",
    rule="double",
    plugin="x",
    reason="Progress: met. Next week: 1 x 6 reps, hold 5 s.",
    dose_before=DOSE,
    dose_after=DOSE,
    status="active",
    matches=(MATCH,),
)
PRESCRIPTION = p.Prescription(
    patient="anna",
    program="low-back-pain",
    program_version="1.0.0",
    week=2,
    start=START,
    status="active",
    exercises={"a": STATE, "b": STATE},
    flags=(FLAG,),
    history=HISTORY,
)

#: Every model the engine builds with `trusted` (or `trusted_dose`), with values of the kinds
#: it passes.
TRUSTED: list[tuple[type[Any], dict[str, Any]]] = [
    (
        p.Dose,
        {
            "sets": 2,
            "reps": 6,
            "hold_s": None,
            "duration_s": 30,
            "load_kg": 12.5,
            "distance_m": 0.0,
            "side": "each",
            "variant": "marching",
        },
    ),
    (
        p.RuleMatch,
        {
            "rule": "r",
            "plugin": "x",
            "action": "hold",
            "reason": "why",
            "exercise": None,
            "values": {"i": 1, "f": 2.5, "s": "t", "b": True, "n": None},
            "applied": False,
        },
    ),
    (
        p.RuleMatch,
        {
            "rule": "r",
            "plugin": "x",
            "action": None,
            "reason": "a note",
            "exercise": "a",
            "values": {},
            "applied": True,
        },
    ),
    (p.Decision, dict(DECISION.__dict__)),
    (p.Decision, {**DECISION.__dict__, "action": "pause", "status": "paused", "matches": ()}),
    (p.ExerciseState, {"dose": DOSE, "status": "paused", "memory": {"phase": "quota", "n": 2}}),
    (p.ExerciseState, {"dose": DOSE, "status": "active", "memory": {}}),
    (p.Flag, {"code": "c", "rule": "r", "plugin": "x", "message": "m", "exercise": None}),
    (p.Flag, dict(FLAG.__dict__)),
    (
        p.Alert,
        {
            "patient": "anna",
            "week": 3,
            "rule": "r",
            "plugin": "x",
            "message": "m",
            "urgent": True,
        },
    ),
    (p.History, {"weeks_without_sessions": 2, "mean_pain": None}),
    (p.History, dict(HISTORY.__dict__)),
    (p.Prescription, dict(PRESCRIPTION.__dict__)),
    (
        p.StepResult,
        {
            "prescription": PRESCRIPTION,
            "decisions": (DECISION,),
            "alerts": (),
            "set_aside": (p.SetAside(source="week", reason="r", record="x"),),
        },
    ),
]


def assert_same_value(fast: object, valid: object) -> None:
    assert type(fast) is type(valid), (fast, valid)
    if isinstance(valid, dict):
        assert isinstance(fast, dict)
        assert list(fast) == list(valid)
        for key, value in valid.items():
            assert_same_value(next(k for k in fast if k == key), key)
            assert_same_value(fast[key], value)
    elif isinstance(valid, tuple):
        assert isinstance(fast, tuple) and len(fast) == len(valid)
        for a, b in zip(fast, valid, strict=True):
            assert_same_value(a, b)
    else:
        assert fast == valid or (fast != fast and valid != valid)  # NaN equals nothing


def assert_same_model(fast: Any, valid: Any) -> None:
    """`fast` is indistinguishable from the validated `valid`."""
    assert type(fast) is type(valid)
    assert list(fast.__dict__) == list(valid.__dict__)
    for name, value in valid.__dict__.items():
        assert_same_value(fast.__dict__[name], value)
    if isinstance(valid, BaseModel):
        assert fast.__pydantic_fields_set__ == valid.__pydantic_fields_set__
        assert fast.__pydantic_extra__ == valid.__pydantic_extra__
        assert fast.__pydantic_private__ == valid.__pydantic_private__
    else:  # a pydantic dataclass: its fields are all there is
        assert vars(fast) == vars(valid)
    assert fast == valid and valid == fast
    try:
        expected_hash: object = hash(valid)
    except TypeError as error:  # a dict field: not hashable either way
        expected_hash = type(error)
    try:
        assert hash(fast) == expected_hash
    except TypeError as error:
        assert type(error) is expected_hash
    assert repr(fast) == repr(valid)
    assert fast.model_dump_json() == valid.model_dump_json()
    assert fast.model_dump() == valid.model_dump()
    assert pickle.loads(pickle.dumps(fast)) == valid
    first = next(iter(valid.__dict__))
    update = {first: valid.__dict__[first]}
    assert fast.model_copy(update=update) == valid.model_copy(update=update)


@pytest.mark.parametrize(
    ("model", "values"), TRUSTED, ids=[f"{m.__name__}-{i}" for i, (m, _) in enumerate(TRUSTED)]
)
def test_trusted_builds_what_validation_builds(model: type[Any], values: dict[str, Any]) -> None:
    assert list(values) == list(model.model_fields), "every field, in declaration order"
    fast = trusted_dose(dict(values)) if model is p.Dose else trusted(model, dict(values))
    assert_same_model(fast, model(**values))


def test_the_fields_set_trusted_models_share_never_changes() -> None:
    state = trusted(p.ExerciseState, {"dose": DOSE, "status": "active", "memory": {}})
    other = trusted(p.ExerciseState, {"dose": DOSE, "status": "paused", "memory": {}})
    shared = state.__pydantic_fields_set__
    assert other.__pydantic_fields_set__ is shared  # one per class: every field is given
    before = set(shared)
    copied = state.model_copy(update={"status": "paused"})
    assert copied.__pydantic_fields_set__ is not shared
    with pytest.raises(ValidationError):
        state.status = "paused"  # type: ignore[misc]  # frozen
    pickle.loads(pickle.dumps(state))
    assert shared == before == set(p.ExerciseState.model_fields)


def test_trusted_sets_every_slot_of_a_model() -> None:
    # `trusted` sets these four, as model_construct does: a slot pydantic adds must be set too.
    assert BaseModel.__slots__ == (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    )
    for model, _ in TRUSTED:
        if model is p.Dose:  # a pydantic dataclass: no slots, no post-init, extra forbidden
            assert not hasattr(model, "__slots__") and not hasattr(model, "__post_init__")
            assert model.__pydantic_config__.get("extra") == "forbid"
            continue
        assert not model.__private_attributes__ and not model.__pydantic_post_init__
        assert model.model_config.get("extra") == "forbid"


def test_every_model_the_engine_trusts_is_covered(monkeypatch: pytest.MonkeyPatch) -> None:
    import progressor.core.engine
    import progressor.core.matches

    built: set[type[BaseModel]] = set()

    def recording(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
        built.add(model)
        return trusted(model, values)

    monkeypatch.setattr(progressor.core.engine, "trusted", recording)
    monkeypatch.setattr(progressor.core.matches, "trusted", recording)
    for compiled in _programs():
        for patient in synthesize_clinic(compiled, patients=22, weeks=3, seed=7):
            compiled.replay(patient.enrollment, patient.records)
    assert built <= {model for model, _ in TRUSTED}
    assert {p.Decision, p.RuleMatch, p.ExerciseState, p.Flag, p.Alert, p.StepResult} <= built


# -- Dose.with_value ----------------------------------------------------------------------


class _SubDose(p.Dose):
    pass


@pytest.mark.parametrize("name", [*NUMERIC_FIELDS, "side", "variant", "bogus"])
@pytest.mark.parametrize(
    "value", [0, 1, 6, 2.4, 2.5, 0.004, -0.0, -1, 1e300, math.inf, math.nan, True, 3]
)
def test_with_value_gives_what_validation_gives(name: str, value: float) -> None:
    dose = p.Dose(sets=2, reps=5, hold_s=5, load_kg=10.0)

    def validated() -> p.Dose:
        rounded = round_whole(value) if name in INT_FIELDS else round_half_up(value, 2)
        return p.Dose(**{**dose.__dict__, name: rounded})

    try:
        expected = validated()
    except (ValidationError, ValueError, OverflowError) as error:
        with pytest.raises(type(error)):
            dose.with_value(name, value)
        return
    assert_same_model(dose.with_value(name, value), expected)


def test_with_value_validates_what_it_cannot_vouch_for() -> None:
    # A subclass (which may add fields) takes pydantic's path, as before: a plain Dose out.
    assert type(_SubDose(reps=5).with_value("reps", 6)) is p.Dose
    assert p.Dose(reps=5).with_value("load_kg", 3).load_kg == 3.0  # int -> float, as validated
    for name in INT_FIELDS:
        with pytest.raises(ValidationError):
            p.Dose(reps=5).with_value(name, 0.2)  # rounds to 0, below every count's minimum
    for name in FLOAT_FIELDS:
        with pytest.raises(ValidationError):
            p.Dose(reps=5).with_value(name, math.nan)


# -- the step's outputs --------------------------------------------------------------------


def _models(value: object) -> Iterator[Any]:
    if isinstance(value, BaseModel | p.Dose):
        yield value
        for field in value.__dict__.values():
            yield from _models(field)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _models(item)
    elif isinstance(value, tuple):
        for item in value:
            yield from _models(item)


def assert_as_validated(result: p.StepResult) -> None:
    """Every model in `result` holds what validating its own fields again gives."""
    for model in _models(result):
        again = type(model)(**model.__dict__)
        assert list(model.__dict__) == list(again.__dict__)
        for name, value in again.__dict__.items():
            assert_same_value(model.__dict__[name], value)
        assert model.model_dump_json() == again.model_dump_json()


def _programs() -> Iterable[p.CompiledProgram]:
    engine = p.Engine(plugins=["progressor_repeated_movements"])
    for path in sorted(PROGRAMS.glob("*.toml")):
        yield engine.compile(p.load_program(path))


def test_every_step_output_is_what_validation_gives() -> None:
    steps = 0
    for compiled in _programs():
        for patient in synthesize_clinic(compiled, patients=22, weeks=4, seed=5):
            results = compiled.replay(patient.enrollment, patient.records)
            for result in results:
                assert_as_validated(result)
                steps += 1
            if results and results[-1].prescription.status == "paused":
                after = compiled.step(compiled.resume(results[-1].prescription), [])
                assert_as_validated(after)
    assert steps > 250


# -- what plugins return: trusted only when of exact built-in types ------------------------


class _Text(str):
    """A str subclass: valid, but validation turns it into a plain str."""


class _Scripted(p.Strategy):
    """Proposes whatever the test sets in `make`."""

    name = "scripted"

    def __init__(self) -> None:
        self.make: Callable[[p.ExerciseWeek], p.Proposal] = lambda week: p.Proposal(
            "hold", "held", week.dose
        )

    def propose(self, week: p.ExerciseWeek, params: BaseModel) -> p.Proposal:
        return self.make(week)

    def regress(self, exercise: p.Exercise, dose: p.Dose, params: BaseModel) -> p.Dose:
        return dose


class _Noting(p.SafetyRule):
    """Finds whatever the test sets in `findings`."""

    name = "noting"

    def __init__(self) -> None:
        self.findings: list[p.Finding] = []

    def evaluate(self, week: p.WeekView, params: BaseModel) -> Iterator[p.Finding]:
        yield from self.findings


class _Plugin:
    __name__ = "clinic_scripted"

    def __init__(self) -> None:
        self.strategy, self.rule = _Scripted(), _Noting()

    @p.hookimpl
    def progressor_register_strategies(self, register: Callable[[p.Strategy], None]) -> None:
        register(self.strategy)

    @p.hookimpl
    def progressor_register_safety_rules(self, register: Callable[[p.SafetyRule], None]) -> None:
        register(self.rule)


@pytest.fixture
def scripted() -> tuple[_Plugin, p.CompiledProgram]:
    plugin = _Plugin()
    program = p.load_program(PROGRAMS / "low-back-pain.toml")
    first, *rest = program.exercises
    first = first.model_copy(update={"progression": Progression(strategy="scripted")})
    program = program.model_copy(
        update={"exercises": (first, *rest), "safety": {**program.safety, "noting": {}}}
    )
    return plugin, p.Engine(plugins=[plugin]).compile(program)


def _step(compiled: p.CompiledProgram) -> p.StepResult:
    enrollment = p.Enrollment(patient="anna", program=compiled.program.id, start=START)
    rows = [p.Outcome.model_validate(r) for r in full_week()]
    return compiled.step(compiled.first_week(enrollment), rows)


PLAIN_AND_ODD: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"reason": "held"}, {"reason": _Text("held")}),
    ({"action": "hold"}, {"action": _Text("hold")}),
    ({"values": {"a": 1}}, {"values": types.MappingProxyType({"a": 1})}),
    ({"values": {"k": "v"}}, {"values": {_Text("k"): _Text("v")}}),
    ({"memory": {"k": 1.5}}, {"memory": {_Text("k"): 1.5}}),
]


@pytest.mark.parametrize(("plain", "odd"), PLAIN_AND_ODD)
def test_valid_proposals_of_odd_types_give_what_plain_ones_give(
    scripted: tuple[_Plugin, p.CompiledProgram], plain: dict[str, Any], odd: dict[str, Any]
) -> None:
    plugin, compiled = scripted
    outputs = []
    for fields in (plain, odd):
        plugin.strategy.make = lambda week, fields=fields: p.Proposal(
            **{"action": "hold", "reason": "held", "dose": week.dose, **fields}
        )
        result = _step(compiled)
        assert_as_validated(result)
        assert not result.prescription.flags
        outputs.append(result.model_dump_json())
    assert outputs[0] == outputs[1]


PLAIN_AND_ODD_FINDINGS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"reason": "why"}, {"reason": _Text("why")}),
    ({"flag": "review"}, {"flag": _Text("review")}),
    ({"exercise": "bridge"}, {"exercise": _Text("bridge")}),
    ({"alert": True, "urgent": True}, {"alert": True, "urgent": 1}),
    ({"values": {"n": 1}}, {"values": types.MappingProxyType({"n": 1})}),
]


@pytest.mark.parametrize(("plain", "odd"), PLAIN_AND_ODD_FINDINGS)
def test_valid_findings_of_odd_types_give_what_plain_ones_give(
    scripted: tuple[_Plugin, p.CompiledProgram], plain: dict[str, Any], odd: dict[str, Any]
) -> None:
    plugin, compiled = scripted
    outputs = []
    for fields in (plain, odd):
        base: dict[str, Any] = {"action": "hold", "reason": "why", "flag": "review"}
        plugin.rule.findings = [p.Finding(**{**base, **fields})]
        result = _step(compiled)
        assert_as_validated(result)
        assert "plugin-failure" not in {f.code for f in result.prescription.flags}
        outputs.append(result.model_dump_json())
    assert outputs[0] == outputs[1]


def _failure(result: p.StepResult) -> p.Flag:
    [failure] = [f for f in result.prescription.flags if f.code == "plugin-failure"]
    assert {d.action for d in result.decisions} == {"hold"}
    return failure


@pytest.mark.parametrize(
    "fields",
    [
        {"values": {"a": [1]}},
        {"values": {1: 2}},
        {"memory": {"k": (1, 2)}},
        {"progress_memory": {"k": {"nested": 1}}, "action": "progress"},
        {"reason": 5},
    ],
)
def test_bad_proposals_still_fail_their_plugin(
    scripted: tuple[_Plugin, p.CompiledProgram], fields: dict[str, Any]
) -> None:
    plugin, compiled = scripted
    plugin.strategy.make = lambda week: p.Proposal(
        **{
            "action": "hold",
            "reason": "held",
            "dose": week.dose.with_value("reps", 6),
            **fields,
        }
    )
    failure = _failure(_step(compiled))
    assert failure.plugin == "clinic_scripted" and "ValidationError" in failure.message


@pytest.mark.parametrize(
    "fields",
    [
        {"values": {"n": [1]}},
        {"reason": 7},
        {"flag": 5},
        {"flag": "review", "alert": True, "urgent": "maybe"},
        {"exercise": None, "values": {"k": object()}},
    ],
)
def test_bad_findings_still_fail_their_plugin(
    scripted: tuple[_Plugin, p.CompiledProgram], fields: dict[str, Any]
) -> None:
    plugin, compiled = scripted
    plugin.rule.findings = [p.Finding(**{"action": "hold", "reason": "why", **fields})]
    failure = _failure(_step(compiled))
    assert failure.plugin == "clinic_scripted" and "ValidationError" in failure.message


# -- the week view ---------------------------------------------------------------------------


def test_week_view_properties_are_computed_once(seed: p.CompiledProgram) -> None:
    enrollment = p.Enrollment(patient="anna", program=seed.program.id, start=START)
    prescription = seed.first_week(enrollment)
    rows = [p.Outcome.model_validate(r) for r in full_week()]
    week = build_week(seed._plans, prescription, rows)
    # build_week gives the values the properties would compute (every step reads them) ...
    plain = p.WeekView(week.prescription, week.exercises, week.outcomes, week.pain_reports)
    assert "pain_scores" not in plain.__dict__
    scores = plain.pain_scores
    assert plain.__dict__["pain_scores"] is scores is plain.pain_scores  # ... once
    assert week.__dict__["pain_scores"] == scores and week.pain_scores == scores
    assert week.mean_pain == plain.mean_pain == 2.0 and week.any_session is True
    assert type(week).pain_scores.__doc__  # the descriptor keeps the docstring


def test_sessions_group_one_day_and_keep_canonical_order(seed: p.CompiledProgram) -> None:
    enrollment = p.Enrollment(patient="anna", program=seed.program.id, start=START)
    prescription = seed.first_week(enrollment)
    day = START + dt.timedelta(days=1)
    rows = [
        p.Outcome(date=day, exercise="knee-to-chest", side="right", reps=(5,), hold_s=5),
        p.Outcome(date=START, exercise="knee-to-chest", reps=(5,), hold_s=5, pain_before=1),
        p.Outcome(date=day, exercise="knee-to-chest", side="left", reps=(5,), hold_s=5),
    ]
    week = build_week(seed._plans, prescription, rows).exercises["knee-to-chest"]
    assert [s.date for s in week.sessions] == [START, day]
    assert [o.side for o in week.sessions[1].outcomes] == ["left", "right"]
    assert week.outcomes == (rows[1], rows[2], rows[0])
    assert all(type(s) is p.Session for s in week.sessions)
    assert week.sessions[0]._fields == p.Session._fields
    assert (week.done_sessions, week.met_sessions, len(week.unscored)) == (2, 0, 3)


def test_component_names_reach_outputs_as_plain_str() -> None:
    class Texty(p.Strategy):
        name = _Text("texty")

        def propose(self, week: p.ExerciseWeek, params: BaseModel) -> p.Proposal:
            return p.Proposal("progress", "up", week.dose.with_value("reps", 6))

        def regress(self, exercise: p.Exercise, dose: p.Dose, params: BaseModel) -> p.Dose:
            return dose

    class Plugin:
        __name__ = "clinic_texty"

        @p.hookimpl
        def progressor_register_strategies(self, register: Callable[[p.Strategy], None]) -> None:
            register(Texty())

    program = p.load_program(PROGRAMS / "low-back-pain.toml")
    first, *rest = program.exercises
    first = first.model_copy(update={"progression": Progression(strategy="texty")})
    compiled = p.Engine(plugins=[Plugin()]).compile(
        program.model_copy(update={"exercises": (first, *rest)})
    )
    result = _step(compiled)
    assert result.decisions[0].rule == "texty"
    assert_as_validated(result)


# -- the usual week (one outcome a day): each_met, and sessions built when first read ---------

_sides = st.sampled_from([None, "left", "right"])
_doses = st.builds(
    p.Dose,
    sets=st.sampled_from([None, 1, 2, 3]),
    reps=st.integers(1, 12),
    hold_s=st.integers(1, 30),
    duration_s=st.integers(1, 600),
    load_kg=st.sampled_from([None, 2.5, 10.0]),
    side=st.sampled_from([None, "each"]),
)
_single_outcomes = st.builds(
    p.Outcome,
    date=st.just(START),
    exercise=st.just("x"),
    side=_sides,
    reps=st.lists(st.integers(0, 14), max_size=4).map(tuple),
    hold_s=st.one_of(st.none(), st.floats(0, 40, allow_nan=False)),
    duration_s=st.lists(st.floats(0, 700, allow_nan=False), max_size=3).map(tuple),
    load_kg=st.one_of(st.none(), st.sampled_from([0.0, 2.5, 12.0])),
)


@pytest.mark.parametrize("type_name", ["reps", "hold", "stretch", "timed"])
@settings(max_examples=150, deadline=None)
@given(dose=_doses, outcomes=st.lists(_single_outcomes, max_size=8))
def test_each_met_answers_as_session_met_does_for_one_outcome(
    type_name: str, dose: p.Dose, outcomes: list[p.Outcome]
) -> None:
    exercise_type = p.Engine().registries.exercise_types[type_name].component
    expected = [exercise_type.session_met(dose, (o,)) for o in outcomes]
    assert exercise_type.each_met(dose, outcomes) == expected


def _one_a_day(days: Iterable[int], **changes: Any) -> list[p.Record]:
    rows = [r for r in full_week(days=days) if r["exercise"] != "knee-to-chest"]
    return [p.Outcome.model_validate({**r, **changes}) for r in rows]


@pytest.mark.parametrize(
    "changes",
    [{}, {"pain_during": None, "pain_after": None}, {"hold_s": 4}, {"skipped": True}],
)
def test_the_usual_week_gives_the_sessions_of_the_day_by_day_path(
    changes: dict[str, Any],
) -> None:
    seed = p.Engine().compile(p.load_program(PROGRAMS / "low-back-pain.toml"))
    prescription = seed.first_week(
        p.Enrollment(patient="anna", program=seed.program.id, start=START)
    )
    records = _one_a_day((0, 2, 4, 5))
    records[3] = records[3].model_copy(update=changes)  # one outcome differs
    usual = build_week(seed._plans, prescription, records)  # in date order: the usual path
    day_by_day = build_week(seed._plans, prescription, records[::-1])  # out of order
    for name in ("pelvic-tilt", "bridge"):
        a, b = usual.exercises[name], day_by_day.exercises[name]
        assert a == b and b == a and type(a) is type(b) is p.ExerciseWeek
        assert all(type(s) is p.Session and type(s.met) is bool for s in a.sessions)
        # The usual week's sessions, made when first read, behave as the tuple they equal.
        lazy, made = a.sessions, b.sessions
        assert type(made) is tuple and lazy == made and made == lazy and (lazy != made) is False
        assert len(lazy) == len(made) and list(lazy) == list(made) and repr(lazy) == repr(made)
        assert (lazy[0], lazy[-1], lazy[1:]) == (made[0], made[-1], made[1:])
        assert operator.add(lazy, made) == operator.add(made, lazy) == made * 2
        assert lazy.index(made[1]) == 1 and lazy.count(made[0]) == 1
        assert tuple(reversed(lazy)) == made[::-1] and made[0] in lazy and bool(lazy)
        assert pickle.loads(pickle.dumps(a)) == a
        assert a._replace(dose=DOSE).sessions == made and a._asdict()["sessions"] == made
        with pytest.raises(AttributeError):
            a.met_sessions = 0  # type: ignore[misc]  # a NamedTuple, read-only


@pytest.mark.parametrize(
    "answer",
    [[True], "yes", None, [True, None, True, True], [2, 1, 1, 1], [1, 1, 1, 1], [1.0] * 4],
)
def test_an_each_met_that_answers_badly_holds_the_patient_and_names_its_plugin(
    answer: object,
) -> None:
    class Odd(p.ExerciseType):
        name = "odd-hold"
        required = ("reps", "hold_s")
        optional = ("sets",)

        def session_met(self, dose: p.Dose, outcomes: Any) -> bool:
            return True

        def each_met(self, dose: p.Dose, outcomes: Any) -> Any:
            return answer

    seed = _seed_with_hold(Odd(), plugin="clinic_odd_type")
    prescription = seed.first_week(
        p.Enrollment(patient="anna", program=seed.program.id, start=START)
    )
    result = seed.step(prescription, _one_a_day((0, 2, 4, 5)))
    assert {d.action for d in result.decisions} == {"hold"}
    [flag] = result.prescription.flags
    assert (flag.code, flag.plugin, flag.rule) == ("plugin-failure", "clinic_odd_type", "odd-hold")
    assert "each_met gave" in flag.message


def test_build_week_makes_the_week_view_its_constructor_makes() -> None:
    seed = p.Engine().compile(p.load_program(PROGRAMS / "low-back-pain.toml"))
    prescription = seed.first_week(
        p.Enrollment(patient="anna", program=seed.program.id, start=START)
    )
    for records in (_one_a_day((0, 2, 4)), [], _one_a_day((0,), skipped=True)):
        week = build_week(seed._plans, prescription, records)
        fields = {f.name: getattr(week, f.name) for f in dataclasses.fields(p.WeekView)}
        assert list(week.__dict__)[: len(fields)] == list(fields)
        made = p.WeekView(**fields)
        assert week == made
        assert week.any_session is p.WeekView.any_session.func(made)  # type: ignore[attr-defined]
        assert week.any_session is any(not o.skipped for o in records)  # type: ignore[union-attr]
        # The pain scores and their mean, given by build_week, are the properties' own values.
        assert week.pain_scores == p.WeekView.pain_scores.func(made)  # type: ignore[attr-defined]
        assert week.mean_pain == p.WeekView.mean_pain.func(made)  # type: ignore[attr-defined]


def _seed_with_hold(
    hold_type: p.ExerciseType, plugin: str = "clinic_hold_type"
) -> p.CompiledProgram:
    """The seed program with its first hold exercise of `hold_type`, from a plugin so named."""

    class Plugin:
        __name__ = plugin

        @p.hookimpl
        def progressor_register_exercise_types(self, register: Callable[[object], None]) -> None:
            register(hold_type)

    text = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
    program = p.parse_program(text.replace('type = "hold"', f'type = "{hold_type.name}"', 1))
    return p.Engine(plugins=[Plugin()]).compile(program)


def _pelvic_tilt(seed: p.CompiledProgram, records: list[p.Record]) -> p.Decision:
    enrollment = p.Enrollment(patient="anna", program=seed.program.id, start=START)
    return seed.step(seed.first_week(enrollment), records).decisions[0]


@pytest.mark.parametrize("answer", [1, 1.0, None, "yes"])
def test_a_session_met_that_answers_other_than_true_or_false_fails_its_type(
    answer: object,
) -> None:
    class Loose(p.ExerciseType):
        name = "loose-hold"
        required = ("reps", "hold_s")
        optional = ("sets",)

        def session_met(self, dose: p.Dose, outcomes: Any) -> bool:
            return answer  # type: ignore[return-value]

    seed = _seed_with_hold(Loose())
    for records in (_one_a_day((0, 2, 4)), _one_a_day((0, 0, 2, 4))):  # usual, two on a day
        decision = _pelvic_tilt(seed, records)
        assert (decision.action, decision.rule) == ("hold", "fail-safe")
        assert "session_met gave" in decision.reason


def test_a_subclass_of_a_built_in_type_that_changes_session_met_is_asked() -> None:
    from progressor.builtins.exercise_types import Hold

    class Never(Hold):
        name = "never-hold"

        def session_met(self, dose: p.Dose, outcomes: Any) -> bool:
            return False

    assert _pelvic_tilt(_seed_with_hold(Never()), _one_a_day((0, 2, 4))).action == "hold"
    instance = Hold()
    instance.name = "instance-hold"  # type: ignore[misc]
    instance.session_met = lambda dose, outcomes: False  # type: ignore[method-assign]
    assert _pelvic_tilt(_seed_with_hold(instance), _one_a_day((0, 2, 4))).action == "hold"


def test_a_built_in_instance_reused_by_a_plugin_is_checked_as_a_plugin() -> None:
    from progressor.builtins.progressions import Double

    strategy = Double()
    strategy.name = "clinic-double"  # type: ignore[misc]
    strategy.propose = lambda week, params: p.Proposal(  # type: ignore[method-assign]
        "hold",
        "odd",
        week.dose,
        memory={"x": object()},  # type: ignore[dict-item]
    )

    class Plugin:
        __name__ = "clinic_double"

        @p.hookimpl
        def progressor_register_strategies(self, register: Callable[[object], None]) -> None:
            register(strategy)

    text = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
    program = p.parse_program(text.replace('strategy = "double"', 'strategy = "clinic-double"', 1))
    seed = p.Engine(plugins=[Plugin()]).compile(program)
    enrollment = p.Enrollment(patient="anna", program=seed.program.id, start=START)
    result = seed.step(seed.first_week(enrollment), _one_a_day((0, 2, 4)))
    [flag] = result.prescription.flags
    assert (flag.code, flag.plugin) == ("plugin-failure", "clinic_double")
    result.model_dump_json()  # serialisable: nothing unchecked got in
