"""The column engine: one partition's patients evaluated together, in polars columns.

`ColumnEngine.compute` takes the patients' enrollment and record lines and gives, for each
patient it covers, the same output rows the per-patient engine writes (byte for byte), and
the patients it leaves to the per-patient engine. This slice covers one judged week (the
usual clinic run: one new week of outcomes per patient):

- the enrollment is one readable line without overrides, on a program whose components all
  give a column form (progressor.columns.forms), and exactly one week has ended;
- every record line is plain as progressor.columns.reading takes it (a line the reader's
  fast path reads, in its plainest form), names the patient, falls in week 1, names an
  exercise of the program, has no symptom flags unless every rule's column form covers
  them (`symptom_flags`), and is the only outcome of its exercise that day;
- no column form routes the patient (a flare, a rise of pain, an outcome without pain
  scores, a gap in sessions: the per-patient engine words those).

The weekly aggregates, the rules' screens and findings are columns; each distinct exercise
week (its counts and the findings' values) is then decided once by the step's own code
(CompiledProgram.decide: most conservative wins, floors and ceilings), and the rows are
written from those decisions. The flags and alerts of the findings are raised by the step's
own code (`raised`), in the order the step raises them (forms.ColumnFinding).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import polars as pl

from progressor.columns.forms import ColumnFinding, column_form
from progressor.columns.reading import PlainColumns
from progressor.core._fast import trusted, tuple_new
from progressor.core.components import Finding
from progressor.core.engine import CompiledProgram
from progressor.core.matches import Match, pauses_program, raised
from progressor.core.models import (
    SEVERITY,
    Alert,
    Enrollment,
    ExerciseState,
    Flag,
    History,
    Prescription,
)
from progressor.core.rounding import round_half_up
from progressor.core.timeline import ended_weeks
from progressor.core.week import ExerciseWeek

_PAINS = ("pain_before", "pain_during", "pain_after", "pain_next_morning")
_LETTERS = {"progress": "p", "hold": "h", "regress": "r", "pause": "x"}
_WEEK = dt.timedelta(days=7)
_json_text = json.JSONEncoder(ensure_ascii=False).encode

Rows = tuple[dict[str, bytes], tuple[str, int, int, int]]

#: The stand-ins a shape of week's prescription is written with, then cut out (_shape): no
#: patient id, day or mean pain the column path writes can be one of them.
_PATIENT = "\x00patient\x00"
_START = dt.date(1, 1, 1)
_STAND_IN = 1234.5678
_MEAN = "\x00mean\x00"


@dataclass(frozen=True)
class _Program:
    """A compiled program whose every component gives a column form."""

    compiled: CompiledProgram
    met: dict[str, pl.Expr]  # each exercise's met expression, for its starting dose
    routes: tuple[pl.Expr, ...]
    findings: tuple[tuple[str, ColumnFinding], ...]  # (rule, finding), in the rules' order
    ranks: tuple[int, ...]  # each finding's rule's place among the program's rules
    symptom_flags: bool  # every rule's column form covers symptom flags (forms.RuleColumns)

    @classmethod
    def of(cls, compiled: CompiledProgram) -> _Program | None:
        """The program's column forms; None when a component gives none, or fails to (a
        plugin's failure sends its patients to the per-patient engine's fail-safe)."""
        try:
            return cls._of(compiled)
        except Exception:
            return None

    @classmethod
    def _of(cls, compiled: CompiledProgram) -> _Program | None:
        met = {}
        for exercise in compiled.program.exercises:
            form = column_form(compiled.exercise_type(exercise.id))
            expr = form.met(exercise.dose) if form is not None else None
            strategy = column_form(compiled.bound_strategy(exercise.id).component)
            if expr is None or strategy is None or not strategy.reads <= _COUNTS:
                return None
            met[exercise.id] = expr
        routes, findings, ranks, flags = [], [], [], True
        for rank, (name, _) in enumerate(compiled.rules):
            bound = compiled.bound_rule(name)
            form = column_form(bound.component)
            if form is None:
                return None
            routes.append(form.routes(bound.params))
            made = [(name, f) for f in form.findings(bound.params)]
            findings += made
            ranks += [rank] * len(made)
            flags = flags and getattr(form, "symptom_flags", False) is True
        return cls(compiled, met, tuple(routes), tuple(findings), tuple(ranks), flags)


#: The ExerciseWeek fields this engine gives a strategy (no sessions, no outcomes).
_COUNTS = frozenset(
    {"exercise", "dose", "memory", "sessions_required", "met_sessions", "done_sessions"}
)


class _Read(NamedTuple):
    """A patient the column path may take: their enrollment and record lines."""

    enrollment: Enrollment
    lines: list[str]


class ColumnEngine:
    """The column engine for a dataset's compiled programs (see the module's docstring)."""

    def __init__(self, programs: dict[str, CompiledProgram]) -> None:
        self._programs = {name: _Program.of(c) for name, c in programs.items()}
        self._decided: dict[tuple[Any, ...], _Decided] = {}
        self._shapes: dict[tuple[Any, ...], _Shape | None] = {}

    def compute(
        self,
        patients: Sequence[str],
        enrollment_lines: dict[str, list[str]],
        record_lines: dict[str, list[str]],
        as_of: dt.date,
    ) -> tuple[dict[str, Rows], list[str]]:
        """The rows of each patient the column path covers, and the others (in order)."""
        taken: dict[str, list[_Read]] = {}
        for read in self._enrolled(patients, enrollment_lines, record_lines, as_of):
            taken.setdefault(read.enrollment.program, []).append(read)
        done: dict[str, Rows] = {}
        for program, group in taken.items():
            plan = self._programs[program]
            assert plan is not None  # (checked in _enrolled)
            done.update(self._program_rows(plan, group))
        return done, [p for p in patients if p not in done]

    def _enrolled(
        self,
        patients: Sequence[str],
        enrollment_lines: dict[str, list[str]],
        record_lines: dict[str, list[str]],
        as_of: dt.date,
    ) -> list[_Read]:
        """The patients whose enrollment the column path may take, with their record lines."""
        found = []
        for patient in patients:
            enrollments = enrollment_lines[patient]
            if len(enrollments) != 1:
                continue
            try:
                enrollment = Enrollment.model_validate_json(enrollments[0])
            except ValueError:
                continue
            if (
                not enrollment.overrides
                and self._programs.get(enrollment.program) is not None
                and ended_weeks(enrollment.start, as_of) == 1
            ):
                lines = [line.rstrip("\r") for line in record_lines.get(patient, [])]
                found.append(_Read(enrollment, lines))
        return found

    def _program_rows(self, plan: _Program, group: list[_Read]) -> dict[str, Rows]:
        """The rows of the patients of one program the column path covers (none when a
        column form fails: the per-patient engine then holds them as any failure is held)."""
        try:
            return self._covered(plan, group)
        except Exception:
            return {}

    def _covered(self, plan: _Program, group: list[_Read]) -> dict[str, Rows]:
        compiled = plan.compiled
        names = [e.id for e in compiled.program.exercises]
        outcomes, reports, bad = _frames(group)
        starts = pl.DataFrame(
            {
                "pid": range(len(group)),
                "start": [read.enrollment.start for read in group],
                "owner": [read.enrollment.patient for read in group],
            },
            schema={"pid": pl.Int64, "start": pl.Date, "owner": pl.String},
        )
        bad |= _unusual(outcomes, reports, starts, names, plan.symptom_flags)
        weeks = _exercise_frame(plan, outcomes, reports, len(group), names)
        routes = pl.any_horizontal(*plan.routes) if plan.routes else pl.lit(False)
        bad |= set(weeks.filter(routes)["pid"].to_list())
        weeks = weeks.filter(~pl.col("pid").is_in(list(bad)))
        keys = [pl.col("exercise"), pl.col("met"), pl.col("done")]
        for _, finding in plan.findings:
            keys.append(pl.when(finding.applies).then(pl.concat_list(finding.keys)).otherwise(None))
        key_names = [f"k{i}" for i in range(len(keys))]
        decided = weeks.select(
            "pid",
            "any_session",
            "scores",
            *[k.alias(n) for k, n in zip(keys, key_names, strict=True)],
        ).with_columns(pl.struct(key_names).rank("dense").alias("kid"))
        # Each distinct exercise week's keys (`kid`), and each patient's week by its shape:
        # whether any session was logged, and their exercise weeks in the program's order.
        # Patients of one shape differ only in their id, their week's start and mean pain.
        firsts = decided.filter(pl.col("kid").is_first_distinct())
        keyed = dict(
            zip(
                firsts["kid"].to_list(),
                zip(*[firsts[n].to_list() for n in key_names], strict=True),
                strict=True,
            )
        )
        patients = (
            decided.group_by("pid", maintain_order=True)
            .agg(pl.col("any_session").first(), pl.col("scores").first(), pl.col("kid"))
            .with_columns(pl.struct("any_session", "kid").rank("dense").alias("shape"))
        )
        shapes = patients.filter(pl.col("shape").is_first_distinct())
        program = compiled.program.id
        made_of: dict[int, tuple[tuple[Any, ...], _Shape | None]] = {}
        for shape, any_session, kids in zip(
            shapes["shape"].to_list(),
            shapes["any_session"].to_list(),
            shapes["kid"].to_list(),
            strict=True,
        ):
            rows = tuple((None, any_session, None, *keyed[kid]) for kid in kids)
            value = (
                program,
                any_session,
                *map(_key, rows),
            )
            made = self._shapes.get(value)
            if made is None:
                made = self._shape(plan, names, list(rows))
                if made is not None:
                    self._shapes[value] = made
            made_of[shape] = (rows, made)
        out: dict[str, Rows] = {}
        for pid, shape, scores in zip(
            patients["pid"].to_list(),
            patients["shape"].to_list(),
            patients["scores"].to_list(),
            strict=True,
        ):
            rows, made = made_of[shape]
            enrollment = group[pid].enrollment
            if made is _RAISING:  # (a flag, an alert or the program's finding: rows in full)
                full = [(pid, row[1], scores, *row[3:]) for row in rows]
                written = self._raising_rows(plan, enrollment, names, full)
            elif made is not None:
                written = _written(made, enrollment, scores)
            else:
                continue
            if written is not None:
                out[enrollment.patient] = written
        return out

    def _shape(
        self, plan: _Program, names: list[str], rows: list[tuple[Any, ...]]
    ) -> _Shape | None:
        """The rows of a shape of week: its decisions' letters, its prescription's JSON cut
        around the patient's id, the week's start and the mean pain (written by the model's
        own serialiser, for a stand-in patient), and its decisions' JSON tails."""
        decided = self._week(plan, names, rows)
        if decided is None:
            return None
        if any(raising for *_, raising in decided):
            return _RAISING
        states = {name: state for name, (_, state, *_) in zip(names, decided, strict=True)}
        flags = [flag for _, _, flag, _, _ in decided if flag is not None]
        prescription = _prescription(
            plan.compiled, _PATIENT, _START, "active", states, flags, rows[0][1], _STAND_IN
        )
        text = prescription.model_dump_json()
        cuts = (_json_text(_PATIENT), f'"{_START.isoformat()}"', repr(_STAND_IN))
        if any(text.count(cut) != 1 for cut in cuts):
            return None  # (a stand-in written elsewhere too: the per-patient engine writes it)
        head, rest = text.split(cuts[0])
        middle, rest = rest.split(cuts[1])
        rest = rest.replace(cuts[2], _MEAN)
        letters = "".join(letter for letter, *_ in decided)
        return letters, (head, f'{middle}"', f'"{rest}'), [tail for _, _, _, tail, _ in decided]

    def _week(
        self, plan: _Program, names: list[str], rows: list[tuple[Any, ...]]
    ) -> list[_Decided] | None:
        """Each exercise's week decided (in the program's order), each distinct one once
        (`_decide`); None when one cannot be."""
        program = plan.compiled.program.id
        by_exercise = {row[3]: row for row in rows}
        decided = []
        for place, name in enumerate(names):
            row = by_exercise[name]
            key = (program, *_key(row))
            made = self._decided.get(key)
            if made is None:
                made = self._decide(plan, place, name, row)
                if made is None:
                    return None
                self._decided[key] = made
            decided.append(made)
        return decided

    def _raising_rows(
        self,
        plan: _Program,
        enrollment: Enrollment,
        names: list[str],
        rows: list[tuple[Any, ...]],
    ) -> Rows | None:
        """A patient's rows written in full: a finding of their week raises a flag or an
        alert, or is the whole program's (its pause pauses the patient)."""
        compiled = plan.compiled
        decided = self._week(plan, names, rows)
        if decided is None:
            return None
        states, flags, tails = {}, [], []
        found: dict[tuple[int, ...], Match] = {}  # (a program's finding, once)
        for name, (letter, state, flag, tail, raising) in zip(names, decided, strict=True):
            states[name] = state
            if flag is not None:
                flags.append(flag)
            tails.append((letter, tail))
            found.update(raising)
        paused = False
        alerts: list[Alert] = []
        if found:
            ordered = [found[k] for k in sorted(found)]
            paused = pauses_program(ordered)
            try:  # (the step's own flags and alerts: the patient's come before the exercises')
                first, alerts = raised(compiled.first_week(enrollment), ordered)
            except Exception:  # a plugin's invalid flag: the per-patient engine's fail-safe
                return None
            flags[:0] = first
        any_session, scores = rows[0][1], rows[0][2]
        mean = round_half_up(sum(scores) / len(scores), 2) if scores else None
        patient = enrollment.patient
        # (A program's pause has paused every exercise: the most conservative wins.)
        status = "paused" if paused else "active"
        prescription = _prescription(
            compiled, patient, enrollment.start + _WEEK, status, states, flags, any_session, mean
        )
        head = f'{{"patient":{_json_text(patient)},"week":1,'
        decisions = "".join(f"{head}{tail}\n" for _, tail in tails)
        tables = {
            "prescriptions": f"{prescription.model_dump_json()}\n".encode(),
            "decisions": decisions.encode(),
            "alerts": "".join(f"{a.model_dump_json()}\n" for a in alerts).encode(),
            "set_aside": b"",
        }
        return tables, ("".join(letter for letter, _ in tails), int(paused), len(alerts), 0)

    def _decide(
        self, plan: _Program, place: int, name: str, row: tuple[Any, ...]
    ) -> _Decided | None:
        """One distinct exercise week decided by the step's own code, with the findings that
        matter beyond it (the program's, and those raising a flag or an alert) keyed by where
        the step raises them; None when a finding is one the step would refuse (the
        per-patient engine's fail-safe words it) or a component fails."""
        compiled = plan.compiled
        exercise = next(e for e in compiled.program.exercises if e.id == name)
        met, done = row[4], row[5]
        keyed: list[tuple[tuple[int, ...], Match]] = []
        try:
            for i, ((rule, finding), values) in enumerate(zip(plan.findings, row[6:], strict=True)):
                if values is None:
                    continue
                made = finding.make(name, *values)
                bound = compiled.bound_rule(rule)
                for j, one in enumerate((made,) if isinstance(made, Finding) else made):
                    if not _valid(one, name):
                        return None
                    match = Match(bound, one.action, one.reason, one.exercise, one.values, one)
                    if one.exercise is None:  # (the program's: before or after the exercises')
                        where = len(compiled.program.exercises) if finding.after else -1
                    else:
                        where = place
                    keyed.append(((plan.ranks[i], where, i, j), match))
            keyed.sort(key=lambda item: item[0])  # (the order the step finds them in)
            matches = [match for _, match in keyed]
            state = trusted(
                ExerciseState, {"dose": exercise.dose, "status": "active", "memory": {}}
            )
            required = exercise.sessions_required or compiled.program.sessions_required
            week = tuple_new(
                ExerciseWeek,
                (exercise, exercise.dose, state.memory, (), required, (), (), met, done),
            )
            decision, next_state, flag = compiled.decide(name, state, week, matches)
        except Exception:  # a component's failure: the per-patient engine's fail-safe words it
            return None
        tail = decision.model_dump_json()[1:]
        raising = tuple(
            (k, m)
            for k, m in keyed
            if m.exercise is None or (m.finding and (m.finding.flag or m.finding.alert))
        )
        return _LETTERS[decision.action], next_state, flag, tail, raising


#: One distinct exercise week decided: its action's letter, next state, the step's flag,
#: the decision row's tail, and the findings to raise for the patient, keyed by their order.
_Decided = tuple[str, ExerciseState, Flag | None, str, tuple[tuple[tuple[int, ...], Match], ...]]
#: A shape of week's rows: its decisions' letters, its prescription's JSON cut around the
#: patient's id, start and mean pain, and its decisions' JSON tails.
_Shape = tuple[str, tuple[str, str, str], list[str]]
#: The shape of a week whose findings raise a flag or an alert, or are the program's: each
#: of its patients' rows are written in full (_raising_rows).
_RAISING: _Shape = ("", ("", "", ""), [])


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An exercise week's decision key: its exercise, met and done sessions, and each
    finding's values (lists made tuples)."""
    return (*row[3:6], *[v if v is None else tuple(v) for v in row[6:]])


def _prescription(
    compiled: CompiledProgram,
    patient: str,
    start: dt.date,
    status: str,
    states: dict[str, ExerciseState],
    flags: list[Flag],
    any_session: bool,
    mean: float | None,
) -> Prescription:
    """Week 2's prescription of a patient computed in columns (one judged week)."""
    history = trusted(
        History, {"weeks_without_sessions": 0 if any_session else 1, "mean_pain": mean}
    )
    return trusted(
        Prescription,
        {
            "patient": patient,
            "program": compiled.program.id,
            "program_version": compiled.program.version,
            "week": 2,
            "start": start,
            "status": status,
            "exercises": states,
            "flags": tuple(flags),
            "history": history,
        },
    )


def _written(made: Any, enrollment: Enrollment, scores: list[float]) -> Rows:
    """A patient's rows from their shape of week's (ColumnEngine._shape)."""
    letters, (head, middle, tail), decided_tails = made
    mean = round_half_up(sum(scores) / len(scores), 2) if scores else None
    patient = _json_text(enrollment.patient)
    start = (enrollment.start + _WEEK).isoformat()
    mean_text = "null" if mean is None else repr(mean)
    prescription = f"{head}{patient}{middle}{start}{tail.replace(_MEAN, mean_text)}\n"
    head_row = f'{{"patient":{patient},"week":1,'
    tables = {
        "prescriptions": prescription.encode(),
        "decisions": "".join(f"{head_row}{t}\n" for t in decided_tails).encode(),
        "alerts": b"",
        "set_aside": b"",
    }
    return tables, (letters, 0, 0, 0)


def _valid(finding: object, name: str) -> bool:
    """Whether the step takes this finding from a rule (its `_findings`' own check) on
    exercise `name`'s row: a program's finding, or one of this exercise."""
    return (
        isinstance(finding, Finding)
        and finding.exercise in (None, name)
        and (finding.action is None or finding.action in SEVERITY)
    )


#: The reader's plain lines in columns (built on first use: polars is an optional extra).
_READER: list[PlainColumns] = []


def _frames(group: list[_Read]) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
    """The outcome and pain report frames of the patients' records (`pid`: their place in
    `group`), and the patients with a line the column path does not take as it is
    (progressor.columns.reading: the reader's plain lines, read in columns)."""
    if not _READER:
        _READER.append(PlainColumns())
    lines = [line for read in group for line in read.lines]
    pids = pl.Series("pid", [p for p, read in enumerate(group) for _ in read.lines], pl.Int64)
    records, taken = _READER[0].read(pl.Series(lines, dtype=pl.String))
    bad = set(pids.filter(~taken).unique().to_list())
    records = records.with_columns(
        pids.gather(records["line"]),
        pl.col("date").str.to_date("%Y-%m-%d"),
        pl.col("flags").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col("skipped").fill_null(False),
        pl.col("adverse_event").fill_null(False),
        pl.col("reps").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
    )
    outcomes = records.filter(pl.col("kind") == "outcome")
    return outcomes, records.filter(pl.col("kind") == "pain"), bad


def _unusual(
    outcomes: pl.DataFrame,
    reports: pl.DataFrame,
    starts: pl.DataFrame,
    names: list[str],
    symptom_flags: bool,
) -> set[int]:
    """The patients with a record the column path does not cover: another patient's, dated
    by a date-time or outside week 1, of an unknown exercise, with symptom flags (unless
    every rule's column form covers them: `symptom_flags`), or a second outcome of an
    exercise on one day."""
    flagged = pl.lit(False) if symptom_flags else pl.col("flags").list.len() > 0
    bad: set[int] = set()
    for frame in (outcomes, reports):
        if frame.is_empty():
            continue
        extra = pl.lit(False)
        if "exercise" in frame.columns:
            twice = pl.struct("pid", "exercise", "date").is_duplicated()
            extra = ~pl.col("exercise").is_in(names) | twice
        unusual = (
            (pl.col("patient").is_not_null() & (pl.col("patient") != pl.col("owner")))
            | pl.col("date").is_null()
            | (pl.col("date") < pl.col("start"))
            | (pl.col("date") >= pl.col("start") + pl.duration(days=7))
            | flagged
            | extra
        )
        checked = frame.join(starts, on="pid")
        bad |= set(checked.filter(unusual)["pid"].to_list())
    return bad


def _exercise_frame(
    plan: _Program,
    outcomes: pl.DataFrame,
    reports: pl.DataFrame,
    patients: int,
    names: list[str],
) -> pl.DataFrame:
    """One row per patient and exercise: the week's counts, and the patient's figures."""
    compiled = plan.compiled
    program = compiled.program
    required = [e.sessions_required or program.sessions_required for e in program.exercises]
    exercises = pl.DataFrame(
        {"exercise": names, "order": range(len(names)), "required": required},
        schema={"exercise": pl.String, "order": pl.Int64, "required": pl.Int64},
    )
    everyone = pl.DataFrame({"pid": range(patients)}, schema={"pid": pl.Int64})
    scored = (
        ~pl.col("skipped")
        & pl.col("pain_before").is_not_null()
        & (pl.col("pain_during").is_not_null() | pl.col("pain_after").is_not_null())
    )
    met = pl.lit(False)
    for name, expr in plan.met.items():
        met = pl.when(pl.col("exercise") == name).then(expr).otherwise(met)
    before = pl.col("pain_before")
    rise = pl.when(before.is_not_null()).then(
        pl.max_horizontal(pl.col("pain_during") - before, pl.col("pain_after") - before)
    )
    rows = outcomes.join(exercises, on="exercise").with_columns(scored.alias("scored"))
    # (A float written as text reads back as the same float: polars writes the shortest.)
    risen = pl.col("date").cast(pl.String) + " " + rise.cast(pl.String)
    counts = (
        rows.sort("date")  # (the sessions' order: one outcome of an exercise a day)
        .group_by("pid", "exercise")
        .agg(
            (~pl.col("skipped")).sum().alias("done"),
            (pl.col("scored") & met).sum().alias("met"),
            (~pl.col("skipped") & ~pl.col("scored")).sum().alias("unscored"),
            rise.max().alias("rise"),
            risen.filter(rise > 0).alias("rises"),
            pl.col("date")
            .cast(pl.String)
            .filter(~pl.col("skipped") & ~pl.col("scored"))
            .alias("unscored_days"),
            pl.col("scored").sum().alias("scored_sessions"),
        )
    )
    # Every pain score in the step's order (its mean is summed in that order): outcomes by
    # exercise in the program's order and by day, then pain reports by day and pain.
    outcome_pains = (
        rows.sort("pid", "order", "date")
        .select("pid", pl.concat_list(_PAINS).list.drop_nulls().alias("pains"))
        .group_by("pid", maintain_order=True)
        .agg(pl.col("pains").explode())
    )
    report_pains = (
        reports.sort("pid", "date", "pain")
        .group_by("pid", maintain_order=True)
        .agg(
            pl.col("pain").alias("reported"),
            (pl.col("context") == "flare").sum().alias("flare_reports"),
        )
    )
    adverse = outcomes.group_by("pid").agg(pl.col("adverse_event").any().alias("adverse"))
    patient = (
        everyone.join(outcome_pains, on="pid", how="left")
        .join(report_pains, on="pid", how="left")
        .join(adverse, on="pid", how="left")
        .join(_symptoms(outcomes, reports), on="pid", how="left")
        .select(
            "pid",
            pl.concat_list(
                pl.col("pains").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
                pl.col("reported").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
            ).alias("scores"),
            pl.col("flare_reports").fill_null(0),
            pl.col("adverse").fill_null(False),
            pl.col("symptoms").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
        .with_columns(pl.col("scores").list.max().alias("max_pain"))
    )
    weeks = (
        everyone.join(exercises, how="cross")
        .join(counts, on=["pid", "exercise"], how="left")
        .with_columns(
            pl.col("done").fill_null(0),
            pl.col("met").fill_null(0),
            pl.col("unscored").fill_null(0),
            pl.col("rise").fill_null(0.0),
            pl.col("rises").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.col("unscored_days").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.col("scored_sessions").fill_null(0),
        )
        .join(patient, on="pid")
        .with_columns(
            (pl.col("done").sum().over("pid") > 0).alias("any_session"),
            pl.lit(0).alias("weeks_without_sessions"),
        )
    )
    return weeks.sort("pid", "order")


def _symptoms(outcomes: pl.DataFrame, reports: pl.DataFrame) -> pl.DataFrame:
    """Each patient's symptom flags as forms.py gives them: "YYYY-MM-DD code", sorted, once."""
    flagged = pl.concat([frame.select("pid", "date", "flags") for frame in (outcomes, reports)])
    entry = pl.col("date").cast(pl.String) + " " + pl.col("flags")
    return (
        flagged.explode("flags")
        .filter(pl.col("flags").is_not_null() & pl.col("date").is_not_null())
        .group_by("pid")
        .agg(entry.unique().sort().alias("symptoms"))
    )
