"""The three roads a patient's records take to the weekly rules, and what each one says.

A synthetic cohort (every shipped program, a dozen clinical profiles, 4-6 weeks each) is
written once as a partitioned dataset; each road then reads the very same lines:

- the command line (`next`, `simulate`, `explain` with `--as-of` the end day), one log file
  per patient holding that patient's lines of the dataset, in the dataset's order;
- the SQLite store (`init`, `enroll --dose`, `import` of the dataset's record files,
  `recompute --week` the end day), read back through `progressor.store.database.Store`;
- the dataset (`recompute --dataset`), run once per week end, since its output holds the
  newest week only.

Every road's answer is reduced to the same `Facts` per patient and week, so that they can be
compared field by field. Used by tests/test_roads.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

import progressor
from progressor.cli.commands import main
from progressor.cli.common import engine_factory
from progressor.core.models import (
    Alert,
    Decision,
    Dose,
    Enrollment,
    Limits,
    Outcome,
    PainReport,
    Prescription,
    Record,
)
from progressor.dataset import TABLES_OUT, DatasetWriter
from progressor.dataset.files import patient_of
from progressor.store.database import Store
from tests.conftest import PROGRAMS

#: Every patient's last week ends on this day (their starts are set back from it), so one
#: `recompute --week END` and one dataset run judge every patient's whole enrollment.
END = dt.date(2026, 3, 2)
PARTITIONS = 3
PROFILES = (
    "steady",  # every session at the full dose, low pain: progress
    "ceiling",  # starting doses overridden to the ceiling: holds, "ready for the next phase"
    "floor",  # starting doses overridden to the floor, new pain every week: regress at floor
    "flare",  # a pain report of 8 in week 2: the program pauses
    "flare-resume",  # as flare; in the store a clinician resumes it (only the store can)
    "new-pain",  # pain during above pain before: once in week 2, twice in week 3
    "gap",  # no session in weeks 2 and 3: an adherence gap
    "drop-out",  # logs week 1 only; the end day judges every later week
    "set-aside",  # bad JSON, an unknown exercise, a pain of 11, a record before the start
    "salvage",  # a broken line that still holds a pain of 9
    "no-scores",  # sessions logged without pain scores
    "under-way",  # steady, and a flare on the first day of the week under way
)


@dataclass(frozen=True)
class Plan:
    patient: str
    program: str
    profile: str
    weeks: int
    start: dt.date
    overrides: Mapping[str, Dose]
    resume_week: int | None  # the week whose paused prescription the store's clinician resumes


@dataclass(frozen=True)
class Facts:
    """What one road says of one patient's week k: its decisions, and the prescription of
    week k + 1 they led to. None: this road does not say it (see the test's docstring)."""

    decisions: dict[str, tuple[str, str, str, str, str]] | None = None  # action, rule, reason,
    # dose before, dose after (as Dose.describe() writes them)
    status: str | None = None
    doses: dict[str, str] | None = None
    statuses: dict[str, str] | None = None
    flags: list[tuple[str, str, str]] | None = None  # code, rule, exercise
    alerts: list[tuple[str, int]] | None = None  # rule, week (the week's own alerts)


@dataclass
class Answer:
    """One road's answer for one patient."""

    weeks: dict[int, Facts] = field(default_factory=dict)
    under_way: list[tuple[str, int]] | None = None  # alerts the week under way already raises
    set_aside: list[tuple[int | None, str]] | None = None  # (line of the patient's log, reason)
    crashes: list[str] = field(default_factory=list)  # a command that ended in a traceback


@dataclass
class Cohort:
    plans: list[Plan]
    programs: dict[str, Path]
    logs: dict[str, Path]  # each patient's lines, as the command line reads them
    lines: dict[str, list[str]]  # each patient's lines, in dataset order
    at: dict[tuple[str, int], tuple[str, int]]  # (records file, line) -> (patient, own line)
    dataset: Path
    root: Path
    roads: dict[str, dict[str, Answer]] = field(default_factory=dict)


# -- the cohort ----------------------------------------------------------------------------


def _engine() -> progressor.Engine:
    # The engine every command builds: the built-ins and the installed plugins (the
    # lumbar-extension program needs progressor-repeated-movements).
    return engine_factory((), ())()


def _limit_dose(exercise: progressor.Exercise, limit: Limits | None) -> Dose | None:
    if limit is None:
        return None
    values = limit.model_dump(exclude_none=True)
    return Dose.model_validate({**exercise.dose.model_dump(exclude_none=True), **values})


def _overrides(
    compiled: progressor.CompiledProgram, patient: str, start: dt.date, profile: str
) -> dict[str, Dose]:
    """Starting doses at the ceiling or the floor, for each exercise whose program accepts
    such a starting dose (the engine decides, as `enroll --dose` does)."""
    if profile not in ("ceiling", "floor"):
        return {}
    chosen: dict[str, Dose] = {}
    for exercise in compiled.program.exercises:
        dose = _limit_dose(exercise, exercise.ceiling if profile == "ceiling" else exercise.floor)
        if dose is None or dose == exercise.dose:
            continue
        trial = Enrollment(
            patient=patient, program=compiled.program.id, start=start, overrides={exercise.id: dose}
        )
        try:
            compiled.first_week(trial)
        except progressor.ProgressorError:
            continue
        chosen[exercise.id] = dose
    return chosen


def _performed(dose: Dose) -> dict[str, Any]:
    """The full prescribed dose, done (the last set two reps over, for two-for-two)."""
    sets = dose.sets or 1
    done: dict[str, Any] = {}
    if dose.reps is not None:
        done["reps"] = [dose.reps] * (sets - 1) + [dose.reps + 2]
    if dose.hold_s is not None:
        done["hold_s"] = dose.hold_s
    if dose.duration_s is not None:
        done["duration_s"] = [dose.duration_s] * sets
    if dose.load_kg is not None:
        done["load_kg"] = dose.load_kg
    return done


def _week_records(plan: Plan, prescription: Prescription, sessions: int) -> list[Record]:
    week, profile = prescription.week, plan.profile
    if profile == "gap" and week in (2, 3):
        return []
    if profile == "drop-out" and week > 1:
        return []
    records: list[Record] = []
    rises = {"new-pain": {2: 1, 3: 2}.get(week, 0), "floor": 1}.get(profile, 0)
    for day in range(sessions):
        date = prescription.start + dt.timedelta(days=day)
        for name, state in prescription.exercises.items():
            if state.status == "paused":
                continue
            scores: dict[str, Any] = {"pain_before": 2, "pain_during": 2, "pain_after": 2}
            if day < rises:
                scores["pain_during"] = 5  # above the pain before, beyond any tolerance
            if profile == "no-scores":
                scores = {}
            fields_ = {"date": date, "exercise": name, "rpe": 4, **_performed(state.dose)}
            records.append(Outcome.model_validate({**fields_, **scores}))
    if profile in ("flare", "flare-resume") and week == 2:
        date = prescription.start + dt.timedelta(days=3)
        records.append(PainReport(date=date, pain=8, context="flare", note="locked up"))
    return records


def _raw_lines(plan: Plan) -> list[str]:
    """Lines no record model can write: what the readers must set aside (or salvage)."""
    p, day = plan.patient, (plan.start + dt.timedelta(days=8)).isoformat()
    if plan.profile == "set-aside":
        before = (plan.start - dt.timedelta(days=3)).isoformat()
        return [
            f'{{"patient": "{p}", "date": "{day}", "exercise": "x", oops',
            json.dumps({"patient": p, "date": day, "exercise": "brdige", "reps": [5]}),
            json.dumps({"patient": p, "kind": "pain", "date": day, "pain": 11}),
            json.dumps({"patient": p, "kind": "pain", "date": before, "pain": 3}),
        ]
    if plan.profile == "salvage":  # (the closing brace lost)
        return [f'{{"patient": "{p}", "date": "{day}", "pain": 9, "context": "flare"']
    if plan.profile == "under-way":
        return [json.dumps({"patient": p, "kind": "pain", "date": END.isoformat(), "pain": 9})]
    return []


def build_cohort(root: Path) -> Cohort:
    """Plans, records and the dataset every road reads; deterministic."""
    engine = _engine()
    programs = {p.stem: p for p in sorted(PROGRAMS.glob("*.toml"))}
    dataset = root / "dataset"
    writer = DatasetWriter(dataset, PARTITIONS)
    plans: list[Plan] = []
    raw: dict[str, list[str]] = {}
    try:
        for program_id, path in programs.items():
            writer.program(program_id, path.read_text(encoding="utf-8"))
        for n, (profile, program_id) in enumerate(
            (pr, pg) for pr in PROFILES for pg in sorted(programs)
        ):
            compiled = engine.compile(progressor.load_program(programs[program_id]))
            weeks = 4 + n % 3
            start = END - dt.timedelta(days=7 * weeks)
            patient = f"r{n + 1:02d}-{profile}"
            overrides = _overrides(compiled, patient, start, profile)
            resume = 3 if profile == "flare-resume" else None
            plan = Plan(patient, program_id, profile, weeks, start, overrides, resume)
            plans.append(plan)
            enrollment = Enrollment(
                patient=patient, program=program_id, start=start, overrides=overrides
            )
            prescription = compiled.first_week(enrollment)
            sessions = compiled.program.sessions_required + 1
            records: list[Record] = []
            for _ in range(weeks):
                week = _week_records(plan, prescription, min(sessions, 7))
                records.extend(week)
                prescription = compiled.step(prescription, week).prescription
            writer.patient(enrollment, records)
            raw[patient] = _raw_lines(plan)
    finally:
        writer.close()
    for patient, lines in raw.items():
        part = progressor.dataset.partition_of(patient, PARTITIONS)
        with (dataset / "records" / f"part-{part:05d}.jsonl").open("a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    return _split_by_patient(root, plans, programs, dataset)


def _split_by_patient(
    root: Path, plans: list[Plan], programs: dict[str, Path], dataset: Path
) -> Cohort:
    lines: dict[str, list[str]] = {p.patient: [] for p in plans}
    at: dict[tuple[str, int], tuple[str, int]] = {}
    for path in sorted((dataset / "records").glob("*.jsonl")):
        source = f"records/{path.name}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            patient = patient_of(line)
            assert patient in lines, f"{source}:{number} names no planned patient"
            lines[patient].append(line)
            at[(source, number)] = (patient, len(lines[patient]))
            at[(str(path), number)] = (patient, len(lines[patient]))
    logs = {}
    for patient, own in lines.items():
        logs[patient] = root / "logs" / f"{patient}.jsonl"
        logs[patient].parent.mkdir(parents=True, exist_ok=True)
        logs[patient].write_text("".join(f"{line}\n" for line in own), encoding="utf-8")
    return Cohort(plans, programs, logs, lines, at, dataset, root)


# -- running a command ---------------------------------------------------------------------


def invoke(args: Sequence[str], crashes: list[str]) -> Result:
    """One command through progressor.cli.commands.main (as tests/test_hooks.py does); a traceback
    is noted in `crashes`."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crashes.append(f"{' '.join(args)}: {type(result.exception).__name__}: {result.exception}")
    elif "Traceback" in result.stderr or result.exit_code not in (0, 3):
        crashes.append(f"{' '.join(args)}: exit {result.exit_code}: {result.stderr.strip()}")
    return result


def _decision(d: Decision) -> tuple[str, str, str, str, str]:
    return (d.action, d.rule, d.reason, d.dose_before.describe(), d.dose_after.describe())


def _with_prescription(facts: Facts, p: Prescription) -> Facts:
    """`facts` with the status, doses, exercise statuses and flags of `p`."""
    return dataclasses.replace(
        facts,
        status=p.status,
        doses={n: s.dose.describe() for n, s in p.exercises.items()},
        statuses={n: s.status for n, s in p.exercises.items()},
        flags=sorted((f.code, f.rule, f.exercise or "") for f in p.flags),
    )


def _alerts(alerts: Iterable[Alert], week: int) -> list[tuple[str, int]]:
    return sorted((a.rule, a.week) for a in alerts if a.week == week)


# -- road 1: the command line --------------------------------------------------------------

_HEAD = re.compile(r"^(\S+): ([A-Z]+) by (\S+) \(.*\)$")
_NEXT = re.compile(r"^next week: \d+ from \S+, status (\S+)$")
_FLAG = re.compile(r"^flag (\S+)(?: \[(\S+)\])? by (\S+) \(")
_ALERT = re.compile(r"^(?:URGENT )?alert by (\S+) \(")
_EARLY = re.compile(r"^warning: week (\d+) is under way, .* \((\S+)\)$")


def _explained(text: str, week: int) -> Facts:
    """The facts of one week from `explain --week` (which shows no exercise statuses)."""
    lines = text.splitlines()
    decisions: dict[str, tuple[str, str, str, str, str]] = {}
    status, flags, alerts = "", [], []
    for i, line in enumerate(lines):
        if m := _NEXT.match(line):
            status = m.group(1)
        elif m := _HEAD.match(line):
            before, _, after = lines[i + 1].strip().partition("  ->  ")
            reason = lines[i + 2][2:]
            decisions[m.group(1)] = (m.group(2).lower(), m.group(3), reason, before, after)
        elif m := _FLAG.match(line):
            flags.append((m.group(1), m.group(3), m.group(2) or ""))
        elif m := _ALERT.match(line):
            alerts.append((m.group(1), week))
    doses = {name: d[4] for name, d in decisions.items()}
    return Facts(decisions, status, doses, None, sorted(flags), sorted(alerts))


def _cli_set_aside(stderr: str, log: Path, own: list[str]) -> list[tuple[int | None, str]]:
    found: list[tuple[int | None, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("set aside: "):
            continue
        item = line.removeprefix("set aside: ")
        if item.startswith(f"{log}:"):
            number, _, rest = item.removeprefix(f"{log}:").partition(": ")
            text = own[int(number) - 1]
            reason = rest.removesuffix(f" ({text})")
            if reason == rest and rest.endswith(")"):  # the step's: "reason (what record)"
                reason = rest.rpartition(" (")[0]
            found.append((int(number), reason))
        else:  # the step's: "week: reason (what record)"
            reason = item.partition(": ")[2].rpartition(" (")[0]
            found.append((None, reason))
    return sorted(found, key=repr)


def cli_road(cohort: Cohort, plan: Plan) -> Answer:
    answer = Answer()
    log = cohort.logs[plan.patient]
    common = [
        str(cohort.programs[plan.program]),
        "--log",
        str(log),
        "--start",
        plan.start.isoformat(),
        "--as-of",
        END.isoformat(),
        *(x for n, d in plan.overrides.items() for x in ("--dose", _dose_option(n, d))),
    ]
    simulated = invoke(["simulate", *common], answer.crashes)
    answer.set_aside = _cli_set_aside(simulated.stderr, log, cohort.lines[plan.patient])
    early = [_EARLY.match(x) for x in simulated.stderr.splitlines()]
    answer.under_way = sorted((m.group(2), int(m.group(1))) for m in early if m)
    answer.weeks[plan.weeks + 1] = Facts(alerts=answer.under_way)
    for week in range(1, plan.weeks + 1):
        explained = invoke(["explain", *common, "--week", str(week)], answer.crashes)
        answer.weeks[week] = _explained(explained.stdout, week)
    done = invoke(["next", *common, "--format", "json"], answer.crashes)
    if done.exit_code in (0, 3):
        doc = json.loads(done.stdout)
        last = answer.weeks[plan.weeks]
        statuses = {name: e["status"] for name, e in doc["exercises"].items()}
        answer.weeks[plan.weeks] = Facts(
            last.decisions, last.status, last.doses, statuses, last.flags, last.alerts
        )
    _simulated_agrees(answer, simulated.stdout)
    return answer


def _simulated_agrees(answer: Answer, table: str) -> None:
    """`simulate` and `explain` of one run must tell the same story (noted as a crash of
    the command line's own consistency when not)."""
    for row in table.splitlines()[2:]:
        week = int(row.split()[0])
        facts = answer.weeks.get(week)
        if facts is None or facts.decisions is None:
            continue
        name = row.split()[1]
        decision = facts.decisions.get(name)
        if decision is None or decision[2] not in row or decision[0] not in row:
            answer.crashes.append(f"simulate week {week} {name}: {row!r} vs explain {decision}")


# -- road 2: the store -----------------------------------------------------------------------


def _dose_option(name: str, dose: Dose) -> str:
    values = dose.model_dump(exclude_none=True)
    return f"{name}:" + ",".join(f"{k}={v}" for k, v in values.items())


def store_road(cohort: Cohort, root: Path) -> dict[str, Answer]:
    db = str(root / "clinic.db")
    crashes: list[str] = []
    invoke(["init", "--store", db], crashes)
    for plan in cohort.plans:
        doses = [x for n, d in plan.overrides.items() for x in ("--dose", _dose_option(n, d))]
        program = str(cohort.programs[plan.program])
        start = plan.start.isoformat()
        invoke(
            ["enroll", plan.patient, "--program", program, "--start", start, *doses, "--store", db],
            crashes,
        )
    parts = sorted(str(p) for p in (cohort.dataset / "records").glob("*.jsonl"))
    invoke(["import", *parts, "--store", db], crashes)
    recompute = ["recompute", "--week", END.isoformat(), "--workers", "1", "--store", db]
    invoke(recompute, crashes)
    resumed = [p for p in cohort.plans if p.resume_week is not None]
    for plan in resumed:
        resume_week = str(plan.resume_week)
        invoke(
            [
                "resume",
                plan.patient,
                "--week",
                resume_week,
                "--note",
                "phoned",
                "--who",
                "t",
                "--store",
                db,
            ],
            crashes,
        )
    if resumed:
        invoke(recompute, crashes)
    answers = {}
    with Store.open(db, readonly=True) as store:
        quarantine = store.quarantine()
        for plan in cohort.plans:
            answer = Answer(crashes=list(crashes))
            decisions = store.decisions(plan.patient)
            prescriptions = {p.week: p for p in store.prescriptions(plan.patient)}
            alerts = store.alerts(plan.patient)
            for week in range(1, plan.weeks + 1):
                facts = Facts(
                    decisions={d.exercise: _decision(d) for w, d in decisions if w == week},
                    alerts=_alerts(alerts, week),
                )
                if week + 1 in prescriptions:
                    facts = _with_prescription(facts, prescriptions[week + 1])
                answer.weeks[week] = facts
            answer.under_way = _alerts(alerts, plan.weeks + 1)
            answer.weeks[plan.weeks + 1] = Facts(alerts=answer.under_way)
            answer.set_aside = sorted(
                [
                    (cohort.at[(q.source, q.line or 0)][1], q.reason)
                    for q in quarantine
                    if cohort.at.get((q.source, q.line or 0), ("",))[0] == plan.patient
                ]
                # the records the rules set aside, at the file and line they came from
                + [
                    (cohort.at[(s.source, s.line)][1] if s.line is not None else None, s.reason)
                    for s in store.set_aside(plan.patient)
                ]
            )
            answers[plan.patient] = answer
    return answers


def store_resumed(root: Path, patient: str) -> list[Prescription]:
    with Store.open(str(root / "clinic.db"), readonly=True) as store:
        return store.prescriptions(patient)


# -- road 3: the dataset ---------------------------------------------------------------------


def _rows(out: Path, table: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((out / table).glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows


def dataset_road(cohort: Cohort, root: Path) -> dict[str, Answer]:
    longest = max(p.weeks for p in cohort.plans)
    outs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    crashes: list[str] = []
    for back in range(longest):  # the week ending `back` weeks before END
        out = root / f"out-{back}"
        day = (END - dt.timedelta(days=7 * back)).isoformat()
        invoke(
            [
                "recompute",
                "--dataset",
                str(cohort.dataset),
                "--out",
                str(out),
                "--week",
                day,
                "--workers",
                "1",
            ],
            crashes,
        )
        outs[back] = {t: _rows(out, t) for t in TABLES_OUT}
    answers = {}
    for plan in cohort.plans:
        answer = Answer(crashes=list(crashes))
        for week in range(1, plan.weeks + 1):
            tables = outs[plan.weeks - week]
            mine = [r for r in tables["decisions"] if r["patient"] == plan.patient]
            decisions = [
                Decision.model_validate(
                    {k: v for k, v in r.items() if k not in ("patient", "week")}
                )
                for r in mine
                if r["week"] == week
            ]
            [prescription] = [
                Prescription.model_validate(r)
                for r in tables["prescriptions"]
                if r["patient"] == plan.patient
            ]
            alerts = [
                Alert.model_validate(r) for r in tables["alerts"] if r["patient"] == plan.patient
            ]
            facts = Facts(
                decisions={d.exercise: _decision(d) for d in decisions},
                alerts=_alerts(alerts, week),
            )
            answer.weeks[week] = _with_prescription(facts, prescription)
        final = outs[0]
        alerts = [Alert.model_validate(r) for r in final["alerts"] if r["patient"] == plan.patient]
        answer.under_way = _alerts(alerts, plan.weeks + 1)
        answer.weeks[plan.weeks + 1] = Facts(alerts=answer.under_way)
        answer.set_aside = sorted(
            (
                cohort.at[(r["source"], r["line"])][1] if r["line"] is not None else None,
                r["reason"],
            )
            for r in final["set_aside"]
            if r.get("patient") == plan.patient
        )
        answers[plan.patient] = answer
    return answers


# -- comparing -------------------------------------------------------------------------------


def comparable(cohort: Cohort, road: str, plan: Plan, week: int, facts: Facts) -> Facts:
    """What of a road's week can be compared with the others (see the test's docstring): the
    store's weeks from a clinician's resume on carry it, which no other road can express."""
    if road != "store" or plan.resume_week is None or week < plan.resume_week - 1:
        return facts
    if week >= plan.resume_week:
        return Facts()
    return Facts(decisions=facts.decisions, alerts=facts.alerts)  # its prescription is resumed


def differences(
    cohort: Cohort, a: str, b: str, profiles: Iterable[str] = PROFILES, only: str | None = None
) -> list[str]:
    """Every field (or the field `only`) of every patient (of `profiles`) and week where road
    `a` and road `b` disagree."""
    wanted = set(profiles)
    out = []
    for plan in cohort.plans:
        if plan.profile not in wanted:
            continue
        left, right = cohort.roads[a][plan.patient], cohort.roads[b][plan.patient]
        for week in range(1, plan.weeks + 2):
            one = comparable(cohort, a, plan, week, left.weeks.get(week, Facts()))
            two = comparable(cohort, b, plan, week, right.weeks.get(week, Facts()))
            for f in fields(Facts):
                if only is not None and f.name != only:
                    continue
                x, y = getattr(one, f.name), getattr(two, f.name)
                if x is None or y is None or x == y:
                    continue
                out.append(_diff(plan, week, f.name, a, x, b, y))
        if only not in (None, "set_aside") or None in (left.set_aside, right.set_aside):
            continue
        if left.set_aside != right.set_aside:
            out.append(_diff(plan, 0, "set_aside", a, left.set_aside, b, right.set_aside))
    return out


def _diff(plan: Plan, week: int, name: str, a: str, x: object, b: str, y: object) -> str:
    where = f"{plan.patient} ({plan.program}), week {week}" if week else f"{plan.patient}"
    if isinstance(x, dict) and isinstance(y, dict):
        keys = sorted(set(x) | set(y))
        parts = [
            f"    {k}:\n      {a}: {x.get(k)}\n      {b}: {y.get(k)}"
            for k in keys
            if x.get(k) != y.get(k)
        ]
        return f"{where}: {name}\n" + "\n".join(parts)
    return f"{where}: {name}\n    {a}: {x}\n    {b}: {y}"
