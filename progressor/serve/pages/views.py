"""What the patient page shows, read from the store: weeks with their decisions, the records,
what was set aside, the clinician actions and the chart. Reading only: every action goes through
the Store API in the router."""

from __future__ import annotations

from dataclasses import dataclass

from progressor.core.models import Alert, Decision, Outcome, PainReport, Prescription, SetAside
from progressor.core.timeline import ClinicianAction
from progressor.errors import ProgressorError
from progressor.store.clinic import StoredRecord
from progressor.store.database import Store


@dataclass(frozen=True)
class WeekView:
    prescription: Prescription
    decisions: tuple[Decision, ...]  # how this week was judged (they made the next week)


@dataclass(frozen=True)
class RecordRow:
    id: str  # as the store names it (`o12`, `p3`): what a void names
    voided: bool
    date: str
    what: str  # the exercise, or "pain report (flare)"
    done: str  # what was done: reps, hold, duration, load
    pain: str  # before / during / after (next morning), or the reported pain
    other: str  # skipped, adverse event, flags, note
    source: str  # the file or road and line it came from


@dataclass(frozen=True)
class PatientView:
    patient: str
    program: str
    version: str
    start: str
    weeks: tuple[WeekView, ...]  # newest first
    alerts: tuple[Alert, ...]
    actions: tuple[ClinicianAction, ...]
    records: tuple[RecordRow, ...]
    set_aside: tuple[SetAside, ...]
    chart: str  # inline SVG, or "" (see chart_note)
    chart_note: str
    discharged: bool
    programs: tuple[str, ...]  # the store's program versions, "id@version" (re-enrolment)

    @property
    def newest(self) -> Prescription | None:
        return self.weeks[0].prescription if self.weeks else None

    @property
    def paused_exercises(self) -> list[str]:
        exercises = {} if self.newest is None else self.newest.exercises
        return [name for name, state in exercises.items() if state.status == "paused"]


def patient_view(store: Store, patient: str) -> PatientView:
    """The patient's page; UnknownPatient (a StoreError) when not enrolled."""
    enrollment = store.enrollment(patient)
    program = store.program_of(patient)
    history = store.prescriptions(patient)
    judged: dict[int, list[Decision]] = {}
    for week, decision in store.decisions(patient):
        judged.setdefault(week, []).append(decision)
    weeks = tuple(WeekView(p, tuple(judged.get(p.week, ()))) for p in reversed(history))
    chart, note = _chart(store, patient) if history else ("", "nothing computed yet")
    return PatientView(
        patient=patient,
        program=program.title,
        version=f"{program.id} {program.version}",
        start=enrollment.start.isoformat(),
        weeks=weeks,
        alerts=tuple(store.alerts(patient)),
        actions=tuple(store.actions(patient)),
        records=_records(store, patient),
        set_aside=tuple(store.set_aside(patient)),
        chart=chart,
        chart_note=note,
        discharged=store.is_discharged(patient),
        programs=tuple(f"{name}@{version}" for name, version in store.programs()),
    )


def _chart(store: Store, patient: str) -> tuple[str, str]:
    """(the chart as inline SVG, "") or ("", why there is none)."""
    try:
        from progressor.charts import chart_data_from_store, progress_chart
    except ImportError:
        return "", "the chart needs the charts extra: pip install 'progressor[charts]'"
    try:
        svg = progress_chart(chart_data_from_store(store, patient), ".svg").decode("utf-8")
    except ProgressorError as exc:
        return "", str(exc)
    # (an inline <svg> element: without the file's XML declaration and DOCTYPE)
    return svg[svg.index("<svg") :], ""


def _records(store: Store, patient: str) -> tuple[RecordRow, ...]:
    """Every stored record of the patient, voided ones too, by date (as `Store.records`)."""
    return tuple(
        _report_row(PainReport.model_validate_json(r.record), r)
        if r.exercise is None
        else _outcome_row(Outcome.model_validate_json(r.record), r)
        for r in store.records(patient)
    )


def _where(stored: StoredRecord) -> str:
    return stored.source if stored.line is None else f"{stored.source}:{stored.line}"


def _number(value: float) -> str:
    return f"{value:g}"


def _outcome_row(o: Outcome, stored: StoredRecord) -> RecordRow:
    done = []
    if o.reps:
        done.append("reps " + " / ".join(str(r) for r in o.reps))
    if o.hold_s is not None:
        done.append(f"hold {_number(o.hold_s)} s")
    if o.duration_s:
        done.append(" / ".join(_number(d) for d in o.duration_s) + " s")
    if o.load_kg is not None:
        done.append(f"{_number(o.load_kg)} kg")
    pains = (o.pain_before, o.pain_during, o.pain_after)
    pain = " / ".join("-" if p is None else _number(p) for p in pains)
    if o.pain_next_morning is not None:
        pain += f" (next morning {_number(o.pain_next_morning)})"
    other = [
        *(["skipped"] if o.skipped else []),
        *(["ADVERSE EVENT"] if o.adverse_event else []),
        *([f"RPE {_number(o.rpe)}"] if o.rpe is not None else []),
        *o.flags,
        *([o.note] if o.note else []),
    ]
    what = o.exercise + (f" ({o.side})" if o.side else "")
    return RecordRow(
        stored.id,
        stored.voided,
        str(o.date),
        what,
        ", ".join(done),
        pain,
        "; ".join(other),
        _where(stored),
    )


def _report_row(r: PainReport, stored: StoredRecord) -> RecordRow:
    other = "; ".join([*r.flags, *([r.note] if r.note else [])])
    what, pain = f"pain report ({r.context})", _number(r.pain)
    return RecordRow(stored.id, stored.voided, str(r.date), what, "", pain, other, _where(stored))
