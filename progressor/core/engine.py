"""The engine: registries resolved once, programs compiled once, then the weekly step.

`Engine` calls every register_* hook when it is built; `Engine.compile` validates a program
against what was registered (names, parameters, doses, limits) and returns a
`CompiledProgram`, whose `step` is pure: no hook calls, no clock, no shared state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from progressor.core._fast import fields_of, plain_values, trusted
from progressor.core.components import (
    ExerciseType,
    Finding,
    NoParams,
    Proposal,
    each_met_of,
)
from progressor.core.matches import (
    ACTIONS,
    Bound,
    ComponentFailure,
    Match,
    built,
    call,
    pauses_program,
    raised,
    rule_match,
    rule_matches,
    sentence,
)
from progressor.core.models import (
    NUMERIC_FIELDS,
    SEVERITY,
    Action,
    Alert,
    Decision,
    Dose,
    Enrollment,
    Exercise,
    ExerciseState,
    Flag,
    History,
    Outcome,
    PainReport,
    Prescription,
    Program,
    Record,
    RuleMatch,
    Scalar,
    Status,
    StepResult,
)
from progressor.core.plugins import (
    PluginManager,
    Registries,
    code_signature,
    get_plugin_manager,
    resolve,
)
from progressor.core.timeline import ended_weeks, fold, week_of, week_start
from progressor.core.validation import compile_program
from progressor.core.week import (
    ExercisePlan,
    ExerciseWeek,
    SessionCheckFailed,
    WeekView,
    build_week,
    never_each_met,
    never_met,
)
from progressor.errors import ProgressorError, did_you_mean

CORE = "progressor"


class Engine:
    """Plugins loaded and registries resolved, ready to compile programs. Thread-safe.

    `plugins` adds plugins (modules, module names or objects); `block` removes built-in
    components (or a whole plugin) by name, never an essential safety rule; with
    `entry_points`, installed plugins of the ``progressor`` entry-point group load too,
    restricted to `allow` when it is given.
    """

    def __init__(
        self,
        plugins: Iterable[object | str] = (),
        *,
        builtins: bool = True,
        block: Iterable[str] = (),
        entry_points: bool = False,
        allow: Iterable[str] | None = None,
        plugin_manager: PluginManager | None = None,
    ) -> None:
        self.plugin_manager = plugin_manager or get_plugin_manager(
            plugins, builtins=builtins, entry_points=entry_points, allow=allow
        )
        self.registries: Registries = resolve(self.plugin_manager, block)

    @property
    def signature(self) -> str:
        """What results computed with this engine depend on besides their inputs
        (progressor.core.plugins.code_signature): kept results with another are stale."""
        return code_signature(self.registries)

    def compile(self, program: Program) -> CompiledProgram:
        """Check `program` against the registered components; raise ProgramError if bad."""
        return CompiledProgram(program, self.registries)


@dataclass(frozen=True)
class _PlannedExercise:
    exercise: Exercise
    exercise_type: ExerciseType
    strategy: Bound
    floor: tuple[tuple[str, float], ...]
    ceiling: tuple[tuple[str, float], ...]
    name: str  # the exercise's id, read on the step's path (a plain field is a cheap read)

    def limit_problem(self, dose: Dose) -> str | None:
        """Why `dose` is outside the floor or ceiling, or None when it is within."""
        fields = fields_of(dose)
        for name, low in self.floor:
            current = fields[name]
            if current is not None and current < low:
                return f"{name} {current:g} is below the floor {low:g}"
        for name, high in self.ceiling:
            current = fields[name]
            if current is not None and current > high:
                return f"{name} {current:g} is above the ceiling {high:g}"
        return None

    def dose_problem(self, dose: Dose) -> str | None:
        """Why the exercise type or the strategy cannot work with `dose` (None if they can)."""
        etype = self.exercise_type
        allowed = {*etype.required, *etype.optional, "variant"}
        missing = [f for f in etype.required if getattr(dose, f) is None]
        extra = [
            f
            for f in (*NUMERIC_FIELDS, "side")
            if getattr(dose, f) is not None and f not in allowed
        ]
        if missing or extra:
            return f"a {etype.name!r} dose needs {missing or 'nothing more'}, not {extra or '-'}"
        problems = list(self.strategy.component.check(dose, self.strategy.params))
        return "; ".join(problems) or None

    def clamp_to_floor(self, dose: Dose) -> Dose:
        """`dose` with every field raised to the floor where it fell below."""
        update = {
            name: low
            for name, low in self.floor
            if (current := getattr(dose, name)) is not None and current < low
        }
        return dose.model_copy(update=update) if update else dose

    def clamp_to_ceiling(self, dose: Dose) -> Dose:
        """`dose` with every field lowered to the ceiling where it rose above."""
        update = {
            name: high
            for name, high in self.ceiling
            if (current := getattr(dose, name)) is not None and current > high
        }
        return dose.model_copy(update=update) if update else dose


class CompiledProgram:
    """A program validated against an engine's plugins: start, step and replay patients."""

    def __init__(self, program: Program, registries: Registries) -> None:
        compiled = compile_program(program, registries)
        self.program = program
        self._registries = registries
        self._rules = tuple(Bound.of(*rule) for rule in compiled.rules)
        self._exercises = tuple(
            _PlannedExercise(
                ex,
                etype,
                Bound.of(*strategy),
                tuple(ex.floor.values().items()),
                tuple(ex.ceiling.values().items()),
                ex.id,
            )
            for ex, etype, strategy in compiled.exercises
        )
        self._plans = {
            p.exercise.id: ExercisePlan(
                p.exercise,
                p.exercise_type.session_met,
                each_met_of(p.exercise_type),
                p.exercise.sessions_required or program.sessions_required,
            )
            for p in self._exercises
        }
        self._unmet_plans = {
            name: ExercisePlan(plan.exercise, never_met, never_each_met, plan.sessions_required)
            for name, plan in self._plans.items()
        }
        self._type_bounds = {
            p.exercise.id: Bound.of(
                p.exercise_type.name,
                registries.exercise_types[p.exercise.type].plugin,
                p.exercise_type,
                NoParams(),
            )
            for p in self._exercises
        }

    @property
    def rules(self) -> tuple[tuple[str, str], ...]:
        """The safety rules that apply, in evaluation order, as (rule, plugin)."""
        return tuple((r.name, r.plugin) for r in self._rules)

    def first_week(self, enrollment: Enrollment) -> Prescription:
        """Week 1 of an enrollment: the program's starting doses, with clinician overrides."""
        unknown = sorted(set(enrollment.overrides) - set(self._plans))
        if unknown:
            raise ProgressorError(f"overrides name unknown exercises: {', '.join(unknown)}")
        exercises = {}
        for plan in self._exercises:
            dose = enrollment.overrides.get(plan.exercise.id)
            if dose is None:  # the program's own starting dose passed these checks in compile()
                dose = plan.exercise.dose
            elif problem := plan.limit_problem(dose) or plan.dose_problem(dose):
                raise ProgressorError(f"override of {plan.exercise.id!r}: {problem}")
            exercises[plan.exercise.id] = ExerciseState(dose=dose)
        return Prescription(
            patient=enrollment.patient,
            program=self.program.id,
            program_version=self.program.version,
            week=1,
            start=enrollment.start,
            exercises=exercises,
        )

    @property
    def signature(self) -> str:
        """The code signature of the engine that compiled it (`Engine.signature`)."""
        return code_signature(self._registries)

    def carried_doses(self, doses: Mapping[str, Dose]) -> dict[str, Dose]:
        """Starting doses for a patient who moves onto this program with `doses` (by exercise
        id): an exercise that continues keeps its dose, brought within this program's floor
        and ceiling; one this program's type or strategy cannot work with (another exercise
        type, a variant it does not know) starts at this program's dose, as does every new
        exercise."""
        carried = {}
        for plan in self._exercises:
            dose = doses.get(plan.exercise.id)
            if dose is None:
                continue
            dose = plan.clamp_to_ceiling(plan.clamp_to_floor(dose))
            if plan.dose_problem(dose) is None:
                carried[plan.exercise.id] = dose
        return carried

    def step(self, prescription: Prescription, records: Iterable[Record]) -> StepResult:
        """Next week's prescription from this week's records: pure and deterministic."""
        if prescription.program != self.program.id:
            raise ProgressorError(
                f"prescription is for program {prescription.program!r}, not {self.program.id!r}"
            )
        if prescription.exercises.keys() != self._plans.keys():
            raise ProgressorError("prescription exercises differ from the program's")
        if not isinstance(records, list | tuple):
            records = list(records)  # read twice if an exercise type fails (below)
        try:
            week = build_week(self._plans, prescription, records)
        except AttributeError:  # checked here, off the hot path: a record of the wrong type
            wrong = next((r for r in records if not isinstance(r, Outcome | PainReport)), None)
            if wrong is None:
                raise
            raise ProgressorError(
                f"records must be Outcome or PainReport, not {type(wrong).__name__}"
                " (Outcome.model_validate(a_dict) reads one; progressor.load_log a file)"
            ) from None
        except SessionCheckFailed as failed:
            # Rebuild the week with nothing counted as met, and hold it as any failure is held.
            week = build_week(self._unmet_plans, prescription, records)
            bound = self._type_bounds[failed.exercise]
            if prescription.status == "paused":
                return self._still_paused(week)
            return self._fail_safe(week, bound, failed.error)
        if prescription.status == "paused":
            return self._still_paused(week)
        try:
            return self._evaluate(week)
        except ComponentFailure as failure:
            return self._fail_safe(week, failure.bound, failure.error)
        except Exception as error:  # a fault of the core itself: still never a crash
            return self._fail_safe(week, Bound("engine", CORE, None, NoParams()), error)

    def replay(
        self, enrollment: Enrollment, records: Iterable[Record], until: dt.date | None = None
    ) -> list[StepResult]:
        """Fold step over every week of the log that ended by `until` (default: all of it)."""
        records = list(records)
        start = enrollment.start
        if until is None:
            weeks = max((week_of(start, r.date) for r in records), default=0)
        else:
            weeks = ended_weeks(start, until)
        as_of = week_start(start, weeks + 1)
        return list(fold(self, enrollment, records, as_of=as_of, weeks=weeks).results)

    def resume(self, prescription: Prescription, exercises: Sequence[str] = ()) -> Prescription:
        """A clinician's resume: the patient (and the named exercises, or all) active again.

        The week's decisions stay as the rules made them (a pause); an exported prescription
        reads an active exercise beside a pausing decision as resumed (export.decided)."""
        unknown = [n for n in exercises if n not in prescription.exercises]
        if unknown:
            hints = [did_you_mean(n, prescription.exercises) for n in unknown]
            raise ProgressorError(
                f"cannot resume unknown exercises {', '.join(map(repr, unknown))}"
                + "".join(f" ({hint})" for hint in hints if hint)
            )
        names = set(exercises or prescription.exercises)
        states = {
            name: state.model_copy(update={"status": "active"}) if name in names else state
            for name, state in prescription.exercises.items()
        }
        return prescription.model_copy(update={"status": "active", "exercises": states})

    # -- the step's parts -------------------------------------------------------------------

    def _findings(self, week: WeekView) -> list[Match]:
        found = []
        for rule in self._rules:
            try:  # (what call does, inlined: this runs for every rule of every patient)
                findings = list(rule.component.evaluate(week, rule.params))
            except Exception as exc:
                raise ComponentFailure(rule, exc) from exc
            for finding in findings:
                if (
                    not isinstance(finding, Finding)
                    or (finding.exercise is not None and finding.exercise not in self._plans)
                    or (finding.action is not None and finding.action not in SEVERITY)
                ):
                    raise ComponentFailure(rule, TypeError(f"invalid finding {finding!r}"))
                found.append(
                    Match(
                        rule,
                        finding.action,
                        finding.reason,
                        finding.exercise,
                        finding.values,
                        finding,
                    )
                )
        return found

    def _evaluate(self, week: WeekView) -> StepResult:
        prescription = week.prescription
        found = self._findings(week)
        flags, alerts = raised(prescription, found) if found else ([], [])
        decisions, states = [], {}
        current = prescription.exercises
        for planned in self._exercises:
            name = planned.name
            matches = (
                [m for m in found if m.exercise is None or m.exercise == name] if found else []
            )
            decision, state, flag = self._decide(
                planned, current[name], week.exercises[name], matches
            )
            decisions.append(decision)
            states[name] = state
            if flag:
                flags.append(flag)
        status: Status = "paused" if found and pauses_program(found) else "active"
        return self._result(week, status, states, decisions, flags, alerts)

    def _decide(
        self,
        planned: _PlannedExercise,
        state: ExerciseState,
        exercise: ExerciseWeek,
        matches: list[Match],
    ) -> tuple[Decision, ExerciseState, Flag | None]:
        # (Each field of the state is read once: a BaseModel's field is a slow lookup.)
        name, status = planned.name, state.status
        if status == "paused":
            return self._held_paused(name, state, rule_matches(matches, None))
        strategy = planned.strategy
        proposal = _proposal(strategy, exercise)
        own = Match(strategy, proposal.action, proposal.reason, name, proposal.values, None)
        applied = _most_conservative(matches, own) if matches else own
        # The canonical str: a plugin's action may be an equal str subclass.
        action: Action = ACTIONS[applied.action] if applied.action else "hold"
        before = state.dose
        reason, dose, flag = applied.reason, before, None
        if action == "progress":
            action, dose, reason, flag = _progressed(planned, before, proposal, reason)
        elif action == "regress":
            dose, reason = _regressed(planned, before, proposal, reason, applied is own)
        if action == "pause":
            status = "paused"
        seen = rule_matches((*matches, own), applied) if matches else (rule_match(own, True),)
        decision = _decision(name, action, applied, reason, before, dose, status, seen)
        next_state = _next_state(strategy, action, proposal, state.memory, dose, status)
        return decision, next_state, flag

    # -- for the column engine (progressor.columns): the step's own parts, by name ----------

    def decide(
        self, name: str, state: ExerciseState, exercise: ExerciseWeek, matches: list[Match]
    ) -> tuple[Decision, ExerciseState, Flag | None]:
        """Exercise `name`'s decision from its week and the rules' matches: the step's own
        code (most conservative wins, floors and ceilings, the next state). The column engine
        calls it once per distinct exercise week, not per patient."""
        planned = next(p for p in self._exercises if p.name == name)
        return self._decide(planned, state, exercise, matches)

    def bound_rule(self, name: str) -> Bound:
        """The safety rule `name`, with its parameters and plugin, as the step applies it."""
        return next(r for r in self._rules if r.name == name)

    def bound_strategy(self, name: str) -> Bound:
        """Exercise `name`'s strategy, with its parameters and plugin."""
        return next(p.strategy for p in self._exercises if p.exercise.id == name)

    def exercise_type(self, name: str) -> ExerciseType:
        """Exercise `name`'s exercise type."""
        return next(p.exercise_type for p in self._exercises if p.exercise.id == name)

    def _held_paused(
        self, name: str, state: ExerciseState, matches: tuple[RuleMatch, ...]
    ) -> tuple[Decision, ExerciseState, None]:
        reason = "this exercise is paused until a clinician resumes it"
        return _awaiting(name, state, reason, matches), state, None

    def _still_paused(self, week: WeekView) -> StepResult:
        prescription = week.prescription
        decisions = []
        for name, state in prescription.exercises.items():
            reason = "the program is paused until a clinician resumes it"
            decisions.append(_awaiting(name, state, reason, ()))
        # Still paused, but a new flare or adverse event must reach the clinician all the same.
        _, alerts = raised(prescription, self._essential_findings(week, None), lenient=True)
        return self._result(week, "paused", dict(prescription.exercises), decisions, [], alerts)

    def _fail_safe(self, week: WeekView, bound: Bound, error: BaseException) -> StepResult:
        """Hold everything and flag the failure; a pause from an essential rule still wins."""
        prescription = week.prescription
        text = f"{type(error).__name__}: {error}"
        message = f"plugin {bound.plugin!r} ({bound.name}) failed: {text}; held at the current dose"
        flags = [Flag(code="plugin-failure", rule=bound.name, plugin=bound.plugin, message=message)]
        found = self._essential_findings(week, bound)
        pauses = [m for m in found if m.action == "pause" and m.exercise is None]
        pause = (pauses[0].bound, pauses[0].finding) if pauses and pauses[0].finding else None
        raised_flags, alerts = raised(prescription, found, lenient=True)
        flags.extend(raised_flags)
        if pause:
            message = f"{pause[1].reason} (and {message})"
        decisions = []
        for name, state in prescription.exercises.items():
            action: Action = "pause" if pause or state.status == "paused" else "hold"
            decisions.append(
                Decision(
                    exercise=name,
                    action=action,
                    rule=pause[0].name if pause else "fail-safe",
                    plugin=pause[0].plugin if pause else CORE,
                    reason=sentence(action, message, state.dose),
                    dose_before=state.dose,
                    dose_after=state.dose,
                    status="paused" if pause else state.status,
                    matches=(),
                )
            )
        status: Status = "paused" if pause else prescription.status
        states = dict(prescription.exercises)
        return self._result(week, status, states, decisions, flags, alerts)

    def _essential_findings(self, week: WeekView, failed: Bound | None) -> list[Match]:
        """What the essential rules find, each guarded: used when the normal path cannot run."""
        found: list[Match] = []
        for rule in self._rules:
            if rule is failed or not rule.component.essential:
                continue
            try:
                findings = list(rule.component.evaluate(week, rule.params))
            except Exception:  # already off the normal path: this rule simply cannot help
                continue
            found.extend(
                Match(rule, f.action, f.reason, f.exercise, f.values, f)
                for f in findings
                if isinstance(f, Finding)
            )
        return found

    def _result(
        self,
        week: WeekView,
        status: Status,
        states: dict[str, ExerciseState],
        decisions: list[Decision],
        flags: list[Flag],
        alerts: list[Alert],
    ) -> StepResult:
        prescription = week.prescription
        if status == "paused":
            states = {n: s.model_copy(update={"status": "paused"}) for n, s in states.items()}
        mean = week.mean_pain
        # A week the program was paused is no missed week: the patient was told to stop
        # exercising until a clinician called, so the count of weeks without a session starts
        # again after it (the adherence rule must not step back a patient who obeyed).
        idle = not week.any_session and prescription.status != "paused"
        # Built without validation: every value below is the core's own or was checked (the
        # plugins' parts in _decide and raised), and a step gives one decision per exercise.
        history = trusted(
            History,
            {
                "weeks_without_sessions": prescription.history.weeks_without_sessions + 1
                if idle
                else 0,
                "mean_pain": prescription.history.mean_pain if mean is None else mean,
            },
        )
        following = trusted(
            Prescription,
            {
                "patient": prescription.patient,
                "program": prescription.program,
                "program_version": prescription.program_version,
                "week": prescription.week + 1,
                "start": prescription.start + _WEEK,
                "status": status,
                "exercises": states,
                "flags": tuple(flags),
                "history": history,
            },
        )
        return trusted(
            StepResult,
            {
                "prescription": following,
                "decisions": tuple(decisions),
                "alerts": tuple(alerts),
                "set_aside": week.set_aside,
            },
        )


_WEEK = dt.timedelta(days=7)


# -- _decide's parts: called once per exercise of a step -------------------------------------

_SETBACKS = ("regress", "pause")  # the actions that replace a strategy's memory by its setback


def _proposal(strategy: Bound, exercise: ExerciseWeek) -> Proposal:
    """The strategy's proposal for the exercise's week; a failure or a bad value is the
    strategy's (a failing ComponentFailure)."""
    try:  # (call, inlined)
        proposal: Proposal = strategy.component.propose(exercise, strategy.params)
    except Exception as exc:
        raise ComponentFailure(strategy, exc) from exc
    if (
        not isinstance(proposal, Proposal)
        or proposal.action not in SEVERITY
        or not isinstance(proposal.dose, Dose)
    ):
        raise ComponentFailure(strategy, TypeError(f"invalid proposal {proposal!r}"))
    return proposal


def _most_conservative(matches: list[Match], own: Match) -> Match:
    """The most conservative match; on a tie the first: safety rules (in program order)
    before the strategy's `own`."""
    applied, rank = own, -1
    for m in (*matches, own):
        if m.action is not None and SEVERITY[m.action] > rank:
            applied, rank = m, SEVERITY[m.action]
    return applied


def _progressed(
    planned: _PlannedExercise, before: Dose, proposal: Proposal, reason: str
) -> tuple[Action, Dose, str, Flag | None]:
    """A progression applied: the proposed dose, or a hold flagged ready for the next phase
    when the strategy is at its top or the dose would pass a limit."""
    dose = proposal.dose
    # Unchanged dose: the strategy is at its top, unless it moved on in its own state
    # (a quota's first quota may equal the baseline dose).
    at_top = dose.same(before) and proposal.progress_memory is None
    if not at_top and not planned.limit_problem(dose):
        return "progress", dose, reason, None
    reason = f"{reason}; at the ceiling: ready for the next phase"
    strategy = planned.strategy
    flag = trusted(  # every value is the core's own (an f-string is an exact str)
        Flag,
        {
            "code": "ready-for-next-phase",
            "rule": strategy.name,
            "plugin": strategy.plugin,
            "message": reason,
            "exercise": planned.name,
        },
    )
    return "hold", before, reason, flag


def _regressed(
    planned: _PlannedExercise,
    before: Dose,
    proposal: Proposal,
    reason: str,
    proposed: bool,
) -> tuple[Dose, str]:
    """A step back applied: the strategy's own lowered dose when it `proposed` the step back,
    else the one its regress gives; never below the floor."""
    strategy = planned.strategy
    lowered = (
        proposal.dose
        if proposed
        else call(strategy, "regress", planned.exercise, before, strategy.params)
    )
    if not isinstance(lowered, Dose):
        raise ComponentFailure(strategy, TypeError(f"regress gave {lowered!r}"))
    dose = planned.clamp_to_floor(lowered)
    if dose.same(before):
        reason = f"{reason}; already at the floor"
    return dose, reason


def _decision(
    name: str,
    action: Action,
    applied: Match,
    reason: str,
    before: Dose,
    dose: Dose,
    status: Status,
    seen: tuple[RuleMatch, ...],
) -> Decision:
    # Every value is checked by now: the action is one of ACTIONS, the doses are Dose
    # instances (which validation takes as they are), the rest is the core's own.
    return trusted(
        Decision,
        {
            "exercise": name,
            "action": action,
            "rule": applied.bound.name,
            "plugin": applied.bound.plugin,
            "reason": sentence(action, reason, dose),
            "dose_before": before,
            "dose_after": dose,
            "status": status,
            "matches": seen,
        },
    )


def _next_state(
    strategy: Bound,
    action: Action,
    proposal: Proposal,
    current: dict[str, Scalar],
    dose: Dose,
    status: Status,
) -> ExerciseState:
    """Next week's state once `action` (the one applied) gave `dose` and `status`, from this
    week's memory `current`; the strategy's memory is validated unless it is plainly valid
    (whichever plugin gave it)."""
    if action == "progress" and proposal.progress_memory is not None:
        memory = proposal.progress_memory
    elif action in _SETBACKS and proposal.setback_memory is not None:
        memory = proposal.setback_memory
    else:
        memory = proposal.memory if proposal.memory is not None else current
    # This week's memory came out of a model (validated, or built from plain values): as
    # it is. Anything else the strategy gave is checked, whichever plugin supplied it.
    if memory is current or plain_values(memory):
        return trusted(ExerciseState, {"dose": dose, "status": status, "memory": dict(memory)})
    return built(strategy, ExerciseState, dose=dose, status=status, memory=memory)


def _awaiting(
    name: str, state: ExerciseState, reason: str, matches: tuple[RuleMatch, ...]
) -> Decision:
    """The decision on a paused exercise: it stays paused until a clinician resumes it."""
    return Decision(
        exercise=name,
        action="pause",
        rule="awaiting-clinician",
        plugin=CORE,
        reason=sentence("pause", reason, state.dose),
        dose_before=state.dose,
        dose_after=state.dose,
        status="paused",
        matches=matches,
    )
