"""The column engine: one partition's patients evaluated together, in polars columns.

`ColumnEngine.compute` takes the patients' enrollment and record lines and gives, for each
patient it covers, the same output rows the per-patient engine writes (byte for byte): the
newest judged week's decisions and alerts, and the prescription after it. It covers:

- the enrollment is one readable line without overrides, on a program whose components all
  give a column form (progressor.columns.forms), and at least one week has ended;
- every record line is plain as progressor.columns.reading takes it (a line the reader's
  fast path reads, in its plainest form), names the patient, is dated from the start to the
  run's day (the week under way included), names an exercise of the program, has no
  symptom flags unless every rule's column form covers them (`symptom_flags`), and is the
  only outcome of its exercise that day;
- no column form routes the patient in any week (a flare, a rise of pain, an outcome
  without pain scores, a gap in sessions: the per-patient engine words those);
- every week before the newest leaves every exercise active, raises no alert and does not
  pause the program (a flag is fine: it does not outlive its week). So the weeks after the
  first never start paused, and the only alerts written are the newest week's;
- the records of the week under way, folded as one more week (after a newest week that
  carries over as the earlier ones must), raise no alert: the per-patient engine writes
  the alerts a week under way already raises.

The fold goes from week to week across all the patients at once (`_covered`). Each week,
the weekly aggregates, the rules' screens and findings are columns; each distinct exercise
week (the exercise state it starts from, its counts and the findings' values) is decided
once by the step's own code (CompiledProgram.decide: most conservative wins, floors and
ceilings), and each exercise state reached is numbered, so that the next week's decision
key holds it and `met` is made once for each dose in use (`form.met(dose)`). The history
carried is the step's: the weeks without sessions and the scores of the last week with any
(its mean pain). The newest week's rows are written from its decisions; its flags and
alerts are raised by the step's own code (`raised`), in the order the step raises them
(forms.ColumnFinding).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import polars as pl

from progressor.columns.forms import ColumnFinding, column_form
from progressor.columns.frames import (
    exercise_frame,
    read_frames,
    table_frames,
    unusual,
    week_numbered,
)
from progressor.core._fast import trusted, tuple_new
from progressor.core.components import Finding
from progressor.core.engine import CompiledProgram
from progressor.core.matches import Match, pauses_program, raised
from progressor.core.models import (
    SEVERITY,
    Alert,
    Dose,
    Enrollment,
    ExerciseState,
    Flag,
    History,
    Prescription,
)
from progressor.core.rounding import round_half_up
from progressor.core.timeline import ended_weeks
from progressor.core.week import ExerciseWeek

_LETTERS = {"progress": "p", "hold": "h", "regress": "r", "pause": "x"}
_WEEK = dt.timedelta(days=7)
_json_text = json.JSONEncoder(ensure_ascii=False).encode

#: The most shapes of week kept written (a few hundred a partition are new: unbounded, the
#: cache grew a worker by 120 MiB over a million patients, bench/batch.py --memory).
_MOST_SHAPES = 4096
#: The record lines computed together: a partition's patients of one program go in chunks
#: of about this many lines (each patient whole; a patient with none counts one). A
#: worker's peak memory follows the lines of a chunk, not its patients. On the benchmark's
#: cohort (13.8 lines a patient), one process computing ten 5,000-patient partitions peaked
#: at 318-321 MiB with chunks of 35,000 lines (over the 300 MiB target), 234-243 with 21,000
#: (about 1,500 patients), 214-217 with 14,000; a thousand patients a chunk, as before, took
#: 14 % more of the column engine's CPU than 2,500 (more polars queries a partition). A
#: cohort with longer histories gets fewer patients a chunk, not more memory.
_CHUNK_LINES = 21_000

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
    types: dict[str, Any]  # each exercise's type column form (forms.TypeColumns)
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
        types = {}
        for exercise in compiled.program.exercises:
            form = column_form(compiled.exercise_type(exercise.id))
            expr = form.met(exercise.dose) if form is not None else None
            strategy = column_form(compiled.bound_strategy(exercise.id).component)
            if expr is None or strategy is None or not strategy.reads <= _COUNTS:
                return None
            types[exercise.id] = form
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
        return cls(compiled, types, tuple(routes), tuple(findings), tuple(ranks), flags)


#: The ExerciseWeek fields this engine gives a strategy (no sessions, no outcomes).
_COUNTS = frozenset(
    {"exercise", "dose", "memory", "sessions_required", "met_sessions", "done_sessions"}
)


class _Read(NamedTuple):
    """A patient the column path may take: their enrollment, record lines and the weeks
    ended by the run's day (each judged, the newest written)."""

    enrollment: Enrollment
    lines: list[str]
    weeks: int


#: An exercise week's row: the patient (`pid`), whether they logged any session, the
#: scores of their history's mean pain, the weeks without sessions before it, then its
#: decision key (_key): the exercise, its state (ColumnEngine._state_id), the met and done
#: sessions and each finding's values.
_KEY_AT = 4


class ColumnEngine:
    """The column engine for a dataset's compiled programs (see the module's docstring).

    `most_weeks` bounds the weeks the column path folds for a patient (None: any number):
    the weeks ended, and the week under way where it has records. The store, which keeps
    every judged week's rows where this engine writes the newest week's (and words the week
    under way its own way), asks for 1."""

    def __init__(self, programs: dict[str, CompiledProgram], most_weeks: int | None = None) -> None:
        self._programs = {name: _Program.of(c) for name, c in programs.items()}
        self._most_weeks = most_weeks
        self._decided: dict[tuple[Any, ...], _Decided | None] = {}
        self._shapes: dict[tuple[Any, ...], _Shape | None] = {}
        # Every exercise state a fold reached, by number (a decision key holds the number),
        # and each one's dose by number (a met expression is made once for each dose).
        self._state_ids: dict[str, int] = {}
        self._states: list[ExerciseState] = []
        self._dose_ids: dict[str, int] = {}
        self._doses: list[Dose] = []
        self._state_doses: list[int] = []
        self._mets: dict[tuple[str, str, int], pl.Expr | None] = {}

    def compute(
        self,
        patients: Sequence[str],
        enrollment_lines: dict[str, Sequence[str | Enrollment]],
        record_lines: dict[str, list[str]],
        as_of: dt.date,
        table: pl.DataFrame | None = None,
    ) -> tuple[dict[str, Rows], list[str]]:
        """The rows of each patient the column path covers, and the others (in order). With
        `table`, the patients' records are its rows (a Parquet log's, read in columns:
        frames.table_frames), not `record_lines`. An enrollment is a line, or the model where
        the caller read it already (the store)."""
        taken: dict[str, list[_Read]] = {}
        for read in self._enrolled(patients, enrollment_lines, record_lines, as_of):
            taken.setdefault(read.enrollment.program, []).append(read)
        done: dict[str, Rows] = {}
        for program, group in taken.items():
            plan = self._programs[program]
            assert plan is not None  # (checked in _enrolled)
            for chunk in _chunks(group, table):
                done.update(self._program_rows(plan, chunk, as_of, table))
        return done, [p for p in patients if p not in done]

    def _enrolled(
        self,
        patients: Sequence[str],
        enrollment_lines: dict[str, Sequence[str | Enrollment]],
        record_lines: dict[str, list[str]],
        as_of: dt.date,
    ) -> list[_Read]:
        """The patients whose enrollment the column path may take, with their record lines."""
        found = []
        most = self._most_weeks
        for patient in patients:
            enrollments = enrollment_lines[patient]
            if len(enrollments) != 1:
                continue
            enrollment = enrollments[0]
            if not isinstance(enrollment, Enrollment):
                try:
                    enrollment = Enrollment.model_validate_json(enrollment)
                except ValueError:
                    continue
            weeks = ended_weeks(enrollment.start, as_of)
            if (
                not enrollment.overrides
                and self._programs.get(enrollment.program) is not None
                and weeks >= 1
                and (most is None or weeks <= most)
            ):
                lines = [line.rstrip("\r") for line in record_lines.get(patient, [])]
                found.append(_Read(enrollment, lines, weeks))
        return found

    def _program_rows(
        self, plan: _Program, group: list[_Read], as_of: dt.date, table: pl.DataFrame | None
    ) -> dict[str, Rows]:
        """The rows of the patients of one program the column path covers (none when a
        column form fails: the per-patient engine then holds them as any failure is held)."""
        try:
            return self._covered(plan, group, as_of, table)
        except Exception:
            return {}

    def _covered(
        self, plan: _Program, group: list[_Read], as_of: dt.date, table: pl.DataFrame | None
    ) -> dict[str, Rows]:
        """The fold from week to week across the group: each week's exercise weeks decided
        (each distinct one once), the patients whose newest judged week it is written, the
        others' states carried to the next week (or the patient routed, _carried). A patient
        with records of the week under way is folded into it too, only to see that it raises
        no alert (`_under_way`): the per-patient engine writes the alerts it raises."""
        names = [e.id for e in plan.compiled.program.exercises]
        if table is None:
            outcomes, reports, bad = read_frames([patient.lines for patient in group])
        else:
            outcomes, reports, bad = table_frames(table, [p.enrollment.patient for p in group])
        starts = pl.DataFrame(
            {
                "pid": range(len(group)),
                "start": [read.enrollment.start for read in group],
                "owner": [read.enrollment.patient for read in group],
                "weeks": [read.weeks for read in group],
            },
            schema={"pid": pl.Int64, "start": pl.Date, "owner": pl.String, "weeks": pl.Int64},
        )
        bad |= unusual(outcomes, reports, starts, names, plan.symptom_flags, as_of)
        outcomes, reports = (week_numbered(frame, starts) for frame in (outcomes, reports))
        # The weeks folded: the ended ones, and the week under way where it has records.
        under_way = pl.concat([outcomes.select("pid", "week"), reports.select("pid", "week")])
        under_way = under_way.join(starts.select("pid", "weeks"), on="pid")
        later = set(under_way.filter(pl.col("week") > pl.col("weeks"))["pid"].to_list())
        starts = starts.with_columns(
            (pl.col("weeks") + pl.col("pid").is_in(list(later)).cast(pl.Int64)).alias("through")
        )
        if self._most_weeks is not None:
            bad |= set(starts.filter(pl.col("through") > self._most_weeks)["pid"].to_list())
        firsts = [
            self._state_id(
                trusted(ExerciseState, {"dose": e.dose, "status": "active", "memory": {}})
            )
            for e in plan.compiled.program.exercises
        ]
        states = pl.DataFrame(
            {
                "pid": [pid for pid in range(len(group)) for _ in names],
                "exercise": names * len(group),
                "state": firsts * len(group),
            },
            schema={"pid": pl.Int64, "exercise": pl.String, "state": pl.Int64},
        )
        carried = starts.select(
            "pid",
            "weeks",
            "through",
            pl.lit(0, pl.Int64).alias("weeks_without_sessions"),
            pl.lit([], pl.List(pl.Float64)).alias("carried"),
        )
        out: dict[int, Rows] = {}
        for week in range(1, max(read.weeks for read in group) + 2):
            carried = carried.filter((pl.col("through") >= week) & ~pl.col("pid").is_in(list(bad)))
            if carried.is_empty():
                break
            states = states.join(carried.select("pid"), on="pid")
            decided, keyed = self._decided_week(
                plan,
                outcomes.filter(pl.col("week") == week),
                reports.filter(pl.col("week") == week),
                states,
                carried,
                names,
                bad,
            )
            newest = decided.filter(pl.col("weeks") == week)
            out.update(self._newest_rows(plan, group, names, week, newest, keyed))
            bad |= self._under_way(plan, names, decided.filter(pl.col("weeks") < week), keyed)
            going = decided.filter(pl.col("through") > week)
            states, carried, routed = self._carried(plan, names, going, keyed)
            bad |= routed
        # (A patient routed after their newest week was written: by the week under way.)
        return {group[pid].enrollment.patient: rows for pid, rows in out.items() if pid not in bad}

    def _decided_week(
        self,
        plan: _Program,
        outcomes: pl.DataFrame,
        reports: pl.DataFrame,
        states: pl.DataFrame,
        carried: pl.DataFrame,
        names: list[str],
        bad: set[int],
    ) -> tuple[pl.DataFrame, dict[int, tuple[Any, ...]]]:
        """One week of the fold: each patient's exercise weeks with their key's number
        (`kid`), and each distinct key; the patients routed are added to `bad`."""
        doses = pl.DataFrame(
            {"state": range(len(self._state_doses)), "dose": self._state_doses},
            schema={"state": pl.Int64, "dose": pl.Int64},
        )
        states = states.join(doses, on="state")
        met, no_form = self._met(plan, states)
        bad |= no_form
        weeks = exercise_frame(
            plan.compiled.program, outcomes, reports, carried, states, names, met
        )
        routes = pl.any_horizontal(*plan.routes) if plan.routes else pl.lit(False)
        bad |= set(weeks.filter(routes)["pid"].to_list())
        weeks = weeks.filter(~pl.col("pid").is_in(list(bad)))
        keys = [pl.col("exercise"), pl.col("state"), pl.col("met"), pl.col("done")]
        for _, finding in plan.findings:
            keys.append(pl.when(finding.applies).then(pl.concat_list(finding.keys)).otherwise(None))
        key_names = [f"k{i}" for i in range(len(keys))]
        decided = weeks.select(
            "pid",
            "any_session",
            "scores",
            "weeks_without_sessions",
            "weeks",
            "through",
            *[k.alias(n) for k, n in zip(keys, key_names, strict=True)],
        ).with_columns(pl.struct(key_names).rank("dense").alias("kid"))
        firsts = decided.filter(pl.col("kid").is_first_distinct())
        keyed = dict(
            zip(
                firsts["kid"].to_list(),
                zip(*[firsts[n].to_list() for n in key_names], strict=True),
                strict=True,
            )
        )
        return decided, keyed

    def _met(self, plan: _Program, states: pl.DataFrame) -> tuple[pl.Expr, set[int]]:
        """Over the outcome frame (with each outcome's exercise `dose` number): whether each
        scored outcome met its patient's dose; and the patients a dose of whom has no column
        form (they go per-patient)."""
        met, routed = pl.lit(False), set()
        for name, dose in (
            states.select("exercise", "dose").unique().sort("exercise", "dose").rows()
        ):
            expr = self._met_of(plan, name, dose)
            here = (pl.col("exercise") == name) & (pl.col("dose") == dose)
            if expr is None:
                routed |= set(states.filter(here)["pid"].to_list())
            else:
                met = pl.when(here).then(expr).otherwise(met)
        return met, routed

    def _met_of(self, plan: _Program, name: str, dose: int) -> pl.Expr | None:
        key = (plan.compiled.program.id, name, dose)
        if key not in self._mets:
            try:  # (a plugin's failure: its patients simply go per-patient)
                self._mets[key] = plan.types[name].met(self._doses[dose])
            except Exception:
                self._mets[key] = None
        return self._mets[key]

    def _state_id(self, state: ExerciseState) -> int:
        """The number of an exercise state (the same state, the same number)."""
        key = state.model_dump_json()
        made = self._state_ids.get(key)
        if made is None:
            made = self._state_ids[key] = len(self._states)
            self._states.append(state)
            dose = state.dose.model_dump_json()
            if dose not in self._dose_ids:
                self._dose_ids[dose] = len(self._doses)
                self._doses.append(state.dose)
            self._state_doses.append(self._dose_ids[dose])
        return made

    def _carried(
        self,
        plan: _Program,
        names: list[str],
        going: pl.DataFrame,
        keyed: dict[int, tuple[Any, ...]],
    ) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
        """The states, carried history and routed patients after a week that is not the
        newest of `going`'s patients. A patient is routed when their week paused an exercise
        or the program, raised an alert, or a decision could not be made: a flag does not
        outlive its week (the next week's prescription holds that week's own), an alert does
        (every alert so far is written) and a pause holds the weeks after it."""
        kids = going["kid"].unique().to_list()
        after, kept = [], []
        for kid in kids:
            key = keyed[kid]
            place = names.index(key[0])
            made = self._decided_row(plan, place, key[0], (None,) * _KEY_AT + tuple(key))
            carries = made is not None and self._carries(plan, made)
            kept.append(carries)
            after.append(made[5] if made is not None and carries else -1)
        table = pl.DataFrame(
            {"kid": kids, "next": after, "kept": kept},
            schema={"kid": going["kid"].dtype, "next": pl.Int64, "kept": pl.Boolean},
        )
        joined = going.join(table, on="kid")
        routed = set(joined.filter(~pl.col("kept"))["pid"].to_list())
        joined = joined.filter(~pl.col("pid").is_in(list(routed)))
        states = joined.select("pid", pl.col("k0").alias("exercise"), pl.col("next").alias("state"))
        idle = pl.col("weeks_without_sessions") + 1
        carried = joined.group_by("pid", maintain_order=True).agg(
            pl.col("weeks").first(),
            pl.col("through").first(),
            pl.when(pl.col("any_session"))
            .then(0)
            .otherwise(idle)
            .first()
            .alias("weeks_without_sessions"),
            pl.col("scores").first().alias("carried"),
        )
        return states, carried, routed

    def _under_way(
        self,
        plan: _Program,
        names: list[str],
        under_way: pl.DataFrame,
        keyed: dict[int, tuple[Any, ...]],
    ) -> set[int]:
        """The patients whose week under way (its records so far) raises an alert, or whose
        exercise week cannot be decided: their rows are the per-patient engine's, which adds
        the alerts the week under way already raises (timeline.fold's `early_alerts`)."""
        routed = set()
        for kid in under_way["kid"].unique().to_list():
            key = keyed[kid]
            made = self._decided_row(
                plan, names.index(key[0]), key[0], (None,) * _KEY_AT + tuple(key)
            )
            if made is None or any(m.finding and m.finding.alert for _, m in made[4]):
                routed |= set(under_way.filter(pl.col("kid") == kid)["pid"].to_list())
        return routed

    def _carries(self, plan: _Program, made: _Decided) -> bool:
        """Whether a decided exercise week leaves its patient to the next week's columns."""
        _, state, _, _, raising, _ = made
        if state.status != "active":
            return False
        matches = [match for _, match in raising]
        if not matches:
            return True
        if pauses_program(matches) or any(m.finding and m.finding.alert for m in matches):
            return False
        # (The step's own flags, made to see that they can be: a plugin's invalid one fails
        # the step, and the per-patient engine's fail-safe words it. No alert reads the
        # stand-in prescription: there is none.)
        stand_in = _prescription(plan.compiled, _PATIENT, _START, "active", {}, [], 0, None, 1)
        try:
            raised(stand_in, matches)
        except Exception:
            return False
        return True

    def _newest_rows(
        self,
        plan: _Program,
        group: list[_Read],
        names: list[str],
        week: int,
        decided: pl.DataFrame,
        keyed: dict[int, tuple[Any, ...]],
    ) -> dict[int, Rows]:
        """The rows of the patients whose newest judged week is `week` (by their place in
        `group`), by shape of week:
        the weeks without sessions after it and their exercise weeks in the program's order.
        Patients of one shape differ only in their id, their week's start and mean pain."""
        idle = pl.col("weeks_without_sessions") + 1
        patients = (
            decided.group_by("pid", maintain_order=True)
            .agg(
                pl.when(pl.col("any_session")).then(0).otherwise(idle).first().alias("idle"),
                pl.col("any_session").first(),
                pl.col("scores").first(),
                pl.col("kid"),
            )
            .with_columns(pl.struct("idle", "kid").rank("dense").alias("shape"))
        )
        shapes = patients.filter(pl.col("shape").is_first_distinct())
        program = plan.compiled.program.id
        made_of: dict[int, tuple[tuple[Any, ...], _Shape | None]] = {}
        for shape, idle_after, any_session, kids in zip(
            shapes["shape"].to_list(),
            shapes["idle"].to_list(),
            shapes["any_session"].to_list(),
            shapes["kid"].to_list(),
            strict=True,
        ):
            rows = tuple((None, any_session, None, None, *keyed[kid]) for kid in kids)
            value = (program, week, idle_after, *map(_key, rows))
            made = self._shapes.get(value)
            if made is None:
                made = self._shape(plan, names, list(rows), week, idle_after)
                if made is not None:
                    if len(self._shapes) >= _MOST_SHAPES:
                        self._shapes.clear()
                    self._shapes[value] = made
            made_of[shape] = (rows, made)
        out: dict[int, Rows] = {}
        for pid, shape, idle_after, scores in zip(
            patients["pid"].to_list(),
            patients["shape"].to_list(),
            patients["idle"].to_list(),
            patients["scores"].to_list(),
            strict=True,
        ):
            rows, made = made_of[shape]
            enrollment = group[pid].enrollment
            if made is _RAISING:  # (a flag, an alert or the program's finding: rows in full)
                full = [(pid, row[1], scores, *row[3:]) for row in rows]
                written = self._raising_rows(plan, enrollment, names, full, week, idle_after)
            elif made is not None:
                written = _written(made, enrollment, scores, week)
            else:
                continue
            if written is not None:
                out[pid] = written
        return out

    def _shape(
        self,
        plan: _Program,
        names: list[str],
        rows: list[tuple[Any, ...]],
        week: int,
        idle: int,
    ) -> _Shape | None:
        """The rows of a shape of week: its decisions' letters, its prescription's JSON cut
        around the patient's id, the week's start and the mean pain (written by the model's
        own serialiser, for a stand-in patient), and its decisions' JSON tails."""
        decided = self._week(plan, names, rows)
        if decided is None:
            return None
        if any(raising for _, _, _, _, raising, _ in decided):
            return _RAISING
        states = {name: made[1] for name, made in zip(names, decided, strict=True)}
        flags = [made[2] for made in decided if made[2] is not None]
        prescription = _prescription(
            plan.compiled, _PATIENT, _START, "active", states, flags, idle, _STAND_IN, week + 1
        )
        text = prescription.model_dump_json()
        cuts = (_json_text(_PATIENT), f'"{_START.isoformat()}"', repr(_STAND_IN))
        if any(text.count(cut) != 1 for cut in cuts):
            return None  # (a stand-in written elsewhere too: the per-patient engine writes it)
        head, rest = text.split(cuts[0])
        middle, rest = rest.split(cuts[1])
        rest = rest.replace(cuts[2], _MEAN)
        letters = "".join(made[0] for made in decided)
        return letters, (head, f'{middle}"', f'"{rest}'), [made[3] for made in decided]

    def _week(
        self, plan: _Program, names: list[str], rows: Sequence[tuple[Any, ...]]
    ) -> list[_Decided] | None:
        """Each exercise's week decided (in the program's order), each distinct one once
        (`_decide`); None when one cannot be."""
        by_exercise = {row[_KEY_AT]: row for row in rows}
        decided = []
        for place, name in enumerate(names):
            made = self._decided_row(plan, place, name, by_exercise[name])
            if made is None:
                return None
            decided.append(made)
        return decided

    def _decided_row(
        self, plan: _Program, place: int, name: str, row: tuple[Any, ...]
    ) -> _Decided | None:
        """An exercise week decided (`_decide`), once for each distinct key."""
        key = (plan.compiled.program.id, *_key(row))
        if key not in self._decided:
            self._decided[key] = self._decide(plan, place, name, row)
        return self._decided[key]

    def _raising_rows(
        self,
        plan: _Program,
        enrollment: Enrollment,
        names: list[str],
        rows: list[tuple[Any, ...]],
        week: int,
        idle: int,
    ) -> Rows | None:
        """A patient's rows written in full: a finding of their week raises a flag or an
        alert, or is the whole program's (its pause pauses the patient)."""
        compiled = plan.compiled
        decided = self._week(plan, names, rows)
        if decided is None:
            return None
        states, flags, tails = {}, [], []
        found: dict[tuple[int, ...], Match] = {}  # (a program's finding, once)
        for name, (letter, state, flag, tail, raising, _) in zip(names, decided, strict=True):
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
                judged = compiled.first_week(enrollment).model_copy(update={"week": week})
                first, alerts = raised(judged, ordered)
            except Exception:  # a plugin's invalid flag: the per-patient engine's fail-safe
                return None
            flags[:0] = first
        scores = rows[0][2]
        mean = round_half_up(sum(scores) / len(scores), 2) if scores else None
        patient = enrollment.patient
        # (A program's pause has paused every exercise: the most conservative wins.)
        status = "paused" if paused else "active"
        start = enrollment.start + _WEEK * week
        prescription = _prescription(
            compiled, patient, start, status, states, flags, idle, mean, week + 1
        )
        head = f'{{"patient":{_json_text(patient)},"week":{week},'
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
        state_id, met, done = row[_KEY_AT + 1 : _KEY_AT + 4]
        keyed: list[tuple[tuple[int, ...], Match]] = []
        try:
            values_of = row[_KEY_AT + 4 :]
            for i, ((rule, finding), values) in enumerate(
                zip(plan.findings, values_of, strict=True)
            ):
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
            state = self._states[state_id]
            required = exercise.sessions_required or compiled.program.sessions_required
            week = tuple_new(
                ExerciseWeek,
                (exercise, state.dose, state.memory, (), required, (), (), met, done),
            )
            decision, next_state, flag = compiled.decide(name, state, week, matches)
            following = self._state_id(next_state)
        except Exception:  # a component's failure: the per-patient engine's fail-safe words it
            return None
        tail = decision.model_dump_json()[1:]
        raising = tuple(
            (k, m)
            for k, m in keyed
            if m.exercise is None or (m.finding and (m.finding.flag or m.finding.alert))
        )
        return _LETTERS[decision.action], next_state, flag, tail, raising, following


#: One distinct exercise week decided: its action's letter, next state, the step's flag,
#: the decision row's tail, the findings to raise for the patient, keyed by their order,
#: and the next state's number.
_Decided = tuple[
    str, ExerciseState, Flag | None, str, tuple[tuple[tuple[int, ...], Match], ...], int
]
#: A shape of week's rows: its decisions' letters, its prescription's JSON cut around the
#: patient's id, start and mean pain, and its decisions' JSON tails.
_Shape = tuple[str, tuple[str, str, str], list[str]]
#: The shape of a week whose findings raise a flag or an alert, or are the program's: each
#: of its patients' rows are written in full (_raising_rows).
_RAISING: _Shape = ("", ("", "", ""), [])


def _chunks(group: list[_Read], table: pl.DataFrame | None) -> Iterator[list[_Read]]:
    """The group in chunks of about _CHUNK_LINES record lines (a Parquet log's rows, with
    `table`), in its order, each patient whole."""
    if table is None:
        sizes = [len(read.lines) for read in group]
    else:
        rows = dict(table.group_by("key").len().iter_rows())
        sizes = [rows.get(read.enrollment.patient, 0) for read in group]
    chunk: list[_Read] = []
    lines = 0
    for read, size in zip(group, sizes, strict=True):
        if chunk and lines + max(size, 1) > _CHUNK_LINES:
            yield chunk
            chunk, lines = [], 0
        chunk.append(read)
        lines += max(size, 1)
    if chunk:
        yield chunk


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An exercise week's decision key: its exercise, state, met and done sessions, and each
    finding's values (lists made tuples)."""
    at = _KEY_AT
    return (*row[at : at + 4], *[v if v is None else tuple(v) for v in row[at + 4 :]])


def _prescription(
    compiled: CompiledProgram,
    patient: str,
    start: dt.date,
    status: str,
    states: dict[str, ExerciseState],
    flags: list[Flag],
    idle: int,
    mean: float | None,
    week: int,
) -> Prescription:
    """Week `week`'s prescription of a patient computed in columns (`idle`: the weeks
    without sessions so far, `mean`: the history's mean pain)."""
    history = trusted(History, {"weeks_without_sessions": idle, "mean_pain": mean})
    return trusted(
        Prescription,
        {
            "patient": patient,
            "program": compiled.program.id,
            "program_version": compiled.program.version,
            "week": week,
            "start": start,
            "status": status,
            "exercises": states,
            "flags": tuple(flags),
            "history": history,
        },
    )


def _written(made: Any, enrollment: Enrollment, scores: list[float], week: int) -> Rows:
    """A patient's rows from their shape of week's (ColumnEngine._shape), `week` judged."""
    letters, (head, middle, tail), decided_tails = made
    mean = round_half_up(sum(scores) / len(scores), 2) if scores else None
    patient = _json_text(enrollment.patient)
    start = (enrollment.start + _WEEK * week).isoformat()
    mean_text = "null" if mean is None else repr(mean)
    prescription = f"{head}{patient}{middle}{start}{tail.replace(_MEAN, mean_text)}\n"
    head_row = f'{{"patient":{patient},"week":{week},'
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
