"""The column engine: one partition's patients evaluated together, in polars columns.

`ColumnEngine.compute` takes the patients' enrollment and record lines and gives, for each
patient it covers, the same output rows the per-patient engine writes (byte for byte), and
the patients it leaves to the per-patient engine. This slice covers one judged week (the
usual clinic run: one new week of outcomes per patient):

- the enrollment is one readable line without overrides, on a program whose components all
  give a column form (progressor.columns.forms), and exactly one week has ended;
- every record line is plain as progressor.columns.reading takes it (a line the reader's
  fast path reads, in its plainest form), names the patient, falls in week 1, names an
  exercise of the program, has no symptom flags, and is the only outcome of its exercise
  that day;
- no column form routes the patient (a flare, a rise of pain, an outcome without pain
  scores, a gap in sessions: the per-patient engine words those).

The weekly aggregates, the rules' screens and findings are columns; each distinct exercise
week (its counts and the findings' values) is then decided once by the step's own code
(CompiledProgram.decide: most conservative wins, floors and ceilings), and the rows are
written from those decisions.
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
from progressor.core.engine import CompiledProgram
from progressor.core.matches import Match
from progressor.core.models import (
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
        routes, findings = [], []
        for name, _ in compiled.rules:
            bound = compiled.bound_rule(name)
            form = column_form(bound.component)
            if form is None:
                return None
            routes.append(form.routes(bound.params))
            findings += [(name, f) for f in form.findings(bound.params)]
        return cls(compiled, met, tuple(routes), tuple(findings))


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
        self._decided: dict[tuple[Any, ...], tuple[str, ExerciseState, Flag | None, str]] = {}
        self._shapes: dict[tuple[Any, ...], tuple[str, tuple[str, str, str], list[str]] | None] = {}

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
        bad |= _unusual(outcomes, reports, starts, names)
        weeks = _exercise_frame(plan, outcomes, reports, len(group), names)
        routes = pl.any_horizontal(*plan.routes) if plan.routes else pl.lit(False)
        bad |= set(weeks.filter(routes)["pid"].to_list())
        weeks = weeks.filter(~pl.col("pid").is_in(list(bad)))
        keys = [pl.col("exercise"), pl.col("met"), pl.col("done")]
        for _, finding in plan.findings:
            keys.append(pl.when(finding.applies).then(pl.concat_list(finding.keys)).otherwise(None))
        decided = weeks.select(
            "pid",
            "any_session",
            "scores",
            *[k.alias(f"k{i}") for i, k in enumerate(keys)],
        ).sort("pid", maintain_order=True)
        out: dict[str, Rows] = {}
        columns = [decided[c].to_list() for c in decided.columns]
        per_patient: dict[int, list[tuple[Any, ...]]] = {}
        for row in zip(*columns, strict=True):
            per_patient.setdefault(row[0], []).append(row)
        for pid, rows in per_patient.items():
            enrollment = group[pid].enrollment
            made = self._patient_rows(plan, enrollment, names, rows)
            if made is not None:
                out[enrollment.patient] = made
        return out

    def _patient_rows(
        self,
        plan: _Program,
        enrollment: Enrollment,
        names: list[str],
        rows: list[tuple[Any, ...]],
    ) -> Rows | None:
        compiled = plan.compiled
        program = compiled.program.id
        any_session, scores = rows[0][1], rows[0][2]
        # The patient's week by its shape: each exercise's decision key, and whether any
        # session was logged (the history's count). Patients of one shape differ only in
        # their id, their week's start and their mean pain.
        shape = (
            program,
            any_session,
            *[(*row[3:6], *[v if v is None else tuple(v) for v in row[6:]]) for row in rows],
        )
        made = self._shapes.get(shape)
        if made is None:
            made = self._shape(plan, names, rows, shape[2:])
            if made is None:
                return None
            self._shapes[shape] = made
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

    def _shape(
        self,
        plan: _Program,
        names: list[str],
        rows: list[tuple[Any, ...]],
        keys: tuple[Any, ...],
    ) -> tuple[str, tuple[str, str, str], list[str]] | None:
        """The rows of a shape of week: its decisions' letters, its prescription's JSON cut
        around the patient's id, the week's start and the mean pain (written by the model's
        own serialiser, for a stand-in patient), and its decisions' JSON tails."""
        compiled = plan.compiled
        by_exercise = {row[3]: (row, key) for row, key in zip(rows, keys, strict=True)}
        states, flags, tails = {}, [], []
        for name in names:
            row, key = by_exercise[name]
            decided = self._decided.get((compiled.program.id, *key))
            if decided is None:
                decided = self._decide(plan, name, row)
                if decided is None:
                    return None
                self._decided[(compiled.program.id, *key)] = decided
            letter, state, flag, tail = decided
            states[name] = state
            if flag is not None:
                flags.append(flag)
            tails.append((letter, tail))
        any_session = rows[0][1]
        history = trusted(
            History, {"weeks_without_sessions": 0 if any_session else 1, "mean_pain": _STAND_IN}
        )
        prescription = trusted(
            Prescription,
            {
                "patient": _PATIENT,
                "program": compiled.program.id,
                "program_version": compiled.program.version,
                "week": 2,
                "start": _START,
                "status": "active",
                "exercises": states,
                "flags": tuple(flags),
                "history": history,
            },
        )
        text = prescription.model_dump_json()
        cuts = (_json_text(_PATIENT), f'"{_START.isoformat()}"', repr(_STAND_IN))
        if any(text.count(cut) != 1 for cut in cuts):
            return None  # (a stand-in written elsewhere too: the per-patient engine writes it)
        head, rest = text.split(cuts[0])
        middle, rest = rest.split(cuts[1])
        rest = rest.replace(cuts[2], _MEAN)
        letters = "".join(letter for letter, _ in tails)
        return letters, (head, f'{middle}"', f'"{rest}'), [tail for _, tail in tails]

    def _decide(
        self, plan: _Program, name: str, row: tuple[Any, ...]
    ) -> tuple[str, ExerciseState, Flag | None, str] | None:
        """One distinct exercise week decided by the step's own code; None when a finding
        raises a flag or an alert (the per-patient engine words those)."""
        compiled = plan.compiled
        exercise = next(e for e in compiled.program.exercises if e.id == name)
        met, done = row[4], row[5]
        matches = []
        try:
            for (rule, finding), values in zip(plan.findings, row[6:], strict=True):
                if values is None:
                    continue
                made = finding.make(name, *values)
                if made.flag or made.alert:
                    return None
                bound = compiled.bound_rule(rule)
                matches.append(Match(bound, made.action, made.reason, name, made.values, made))
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
        return _LETTERS[decision.action], next_state, flag, tail


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
        pl.col("flags").list.len().fill_null(0),
        pl.col("skipped").fill_null(False),
        pl.col("adverse_event").fill_null(False),
        pl.col("reps").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
    )
    outcomes = records.filter(pl.col("kind") == "outcome")
    return outcomes, records.filter(pl.col("kind") == "pain"), bad


def _unusual(
    outcomes: pl.DataFrame, reports: pl.DataFrame, starts: pl.DataFrame, names: list[str]
) -> set[int]:
    """The patients with a record the column path does not cover: another patient's, dated
    by a date-time or outside week 1, of an unknown exercise, with symptom flags, or a
    second outcome of an exercise on one day."""
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
            | (pl.col("flags") > 0)
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
    counts = rows.group_by("pid", "exercise").agg(
        (~pl.col("skipped")).sum().alias("done"),
        (pl.col("scored") & met).sum().alias("met"),
        (~pl.col("skipped") & ~pl.col("scored")).sum().alias("unscored"),
        rise.max().alias("rise"),
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
        .select(
            "pid",
            pl.concat_list(
                pl.col("pains").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
                pl.col("reported").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
            ).alias("scores"),
            pl.col("flare_reports").fill_null(0),
            pl.col("adverse").fill_null(False),
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
        )
        .join(patient, on="pid")
        .with_columns(
            (pl.col("done").sum().over("pid") > 0).alias("any_session"),
            pl.lit(0).alias("weeks_without_sessions"),
        )
    )
    return weeks.sort("pid", "order")
