"""A patient's progress chart: pain and doses over the weeks, decisions and clinician actions.

matplotlib (the `charts` extra) draws on its own Figure with the Agg canvas, never pyplot's
global state, so a web page may call `progress_chart` from any thread. The same inputs give
byte-identical files: the SVG's ids come from a fixed hash salt and no date is written.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from progressor.core.models import Decision, Outcome, PainReport, Prescription, Program
from progressor.core.timeline import ClinicianAction
from progressor.errors import ProgressorError
from progressor.store.database import Store

FORMATS = (".svg", ".png")
#: How each decision is marked on the dose panel: (marker, colour).
MARKS = {
    "progress": ("^", "#2a7f2a"),
    "hold": ("o", "#777777"),
    "regress": ("v", "#c77c00"),
    "pause": ("X", "#c00000"),
}
_PAIN = (("before", "#1f5fa8"), ("during", "#c77c00"), ("after", "#c00000"))
_FIELDS = ("reps", "sets", "hold_s", "duration_s", "load_kg", "distance_m")
_STYLES = ("-", "--", ":", "-.")
_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


@dataclass(frozen=True)
class ChartData:
    """What the chart shows of one patient."""

    patient: str
    program: Program
    start: dt.date
    prescriptions: tuple[Prescription, ...]  # week 1, 2, ... as computed
    decisions: tuple[tuple[int, Decision], ...]  # (the week judged, its decision)
    outcomes: tuple[Outcome, ...]
    pain_reports: tuple[PainReport, ...]
    actions: tuple[ClinicianAction, ...]


def chart_data_from_store(store: Store, patient: str) -> ChartData:
    """Everything the chart of `patient` needs, read from the store."""
    history = store.prescriptions(patient)
    if not history:
        raise ProgressorError(f"{patient}: nothing computed yet; run progressor recompute")
    inputs = store.inputs([patient])[0]
    return ChartData(
        patient=patient,
        program=store.program_of(patient),
        start=store.enrollment(patient).start,
        prescriptions=tuple(history),
        decisions=tuple(store.decisions(patient)),
        outcomes=tuple(Outcome.model_validate_json(t) for t in inputs.outcomes),
        pain_reports=tuple(PainReport.model_validate_json(t) for t in inputs.pain_reports),
        actions=tuple(store.actions(patient)),
    )


def progress_chart(data: ChartData, fmt: str = ".svg") -> bytes:
    """The chart as an SVG or PNG file's bytes (`fmt`: '.svg' or '.png')."""
    fmt = fmt if fmt.startswith(".") else f".{fmt}"
    if fmt.lower() not in FORMATS:
        raise ProgressorError(f"a chart is .svg or .png, not {fmt!r}")
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "progressor",  # (ids from a fixed salt, not a random one)
            "svg.fonttype": "none",  # (text stays text: readable, and searchable by tests)
            "font.family": "DejaVu Sans",
            "font.size": 9,
        }
    ):
        figure = Figure(figsize=(8, 6.5), dpi=100)
        FigureCanvasAgg(figure)
        pain, doses = figure.subplots(2, 1, sharex=True)
        _pain_panel(pain, data)
        _dose_panel(doses, data)
        for axes in (pain, doses):
            _actions(axes, data.actions)
        figure.suptitle(f"{data.patient}: {data.program.title}")
        figure.tight_layout()
        out = io.BytesIO()
        # No date, no software version: the same inputs give the same bytes.
        metadata = {"Date": None} if fmt.lower() == ".svg" else {"Software": None}
        figure.savefig(out, format=fmt.lower()[1:], metadata=metadata)
    return out.getvalue()


def _week_of_day(start: dt.date, day: dt.date) -> float:
    """Where a day lies on the week axis: week k spans [k, k + 1)."""
    return 1 + (day - start).days / 7


def _pain_panel(axes: Axes, data: ChartData) -> None:
    """Each day's highest pain before, during and after exercising (a flare is never
    averaged away), and the pain the patient reported on its own."""
    days = sorted({o.date for o in data.outcomes})
    for which, colour in _PAIN:
        points = [
            (_week_of_day(data.start, day), worst)
            for day in days
            if (worst := _worst(data.outcomes, day, f"pain_{which}")) is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            (line,) = axes.plot(xs, ys, "o-", color=colour, markersize=3, label=f"pain {which}")
            line.set_gid(f"pain-{which}")
    reports = [(_week_of_day(data.start, r.date), r.pain) for r in data.pain_reports]
    if reports:
        xs, ys = zip(*sorted(reports), strict=True)
        (marks,) = axes.plot(xs, ys, "s", color="#7a1fa2", label="pain reported")
        marks.set_gid("pain-reported")
    axes.set_ylim(-0.3, 10.3)
    axes.set_ylabel("pain (0-10)")
    axes.legend(loc="upper right", fontsize=7)
    axes.grid(alpha=0.3)


def _worst(outcomes: Sequence[Outcome], day: dt.date, field: str) -> float | None:
    scores = [getattr(o, field) for o in outcomes if o.date == day]
    return max((s for s in scores if s is not None), default=None)


def _dose_panel(axes: Axes, data: ChartData) -> None:
    """Each exercise's dose fields, week by week, and each decision marked where it applies."""
    for index, exercise in enumerate(data.program.exercises):
        colour = _COLOURS[index % len(_COLOURS)]
        for style, field in zip(_STYLES, _dose_fields(data, exercise.id), strict=False):
            points = list(_dose_points(data.prescriptions, exercise.id, field))
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            label = f"{exercise.name}: {field.removesuffix('_s').replace('_', ' ')}"
            (line,) = axes.step(xs, ys, where="post", color=colour, linestyle=style, label=label)
            line.set_gid(f"dose-{exercise.id}-{field}")
    drawn = {e.id: _dose_fields(data, e.id)[:1] for e in data.program.exercises}
    for action, (marker, colour) in MARKS.items():
        points = [
            (week + 1, _value(decision, drawn.get(decision.exercise, [])))
            for week, decision in data.decisions
            if decision.action == action
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            (marks,) = axes.plot(xs, ys, marker, color=colour, markersize=7, label=action)
            marks.set_gid(f"decision-{action}")
    axes.set_xlabel("week")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("dose")
    axes.legend(loc="upper left", fontsize=7, ncol=2)
    axes.grid(alpha=0.3)


def _dose_fields(data: ChartData, exercise: str) -> list[str]:
    """The fields of an exercise's dose to draw: those that change over the weeks (a
    constant "1 set" would only crowd the panel), or all when none changes."""
    values: dict[str, set[float]] = {}
    for p in data.prescriptions:
        if exercise in p.exercises:
            dose = p.exercises[exercise].dose
            for name in _FIELDS:
                if (value := getattr(dose, name)) is not None:
                    values.setdefault(name, set()).add(value)
    changing = [name for name in _FIELDS if len(values.get(name, ())) > 1]
    return changing or [name for name in _FIELDS if name in values]


def _dose_points(
    prescriptions: Sequence[Prescription], exercise: str, field: str
) -> Iterator[tuple[float, float]]:
    last = None
    for p in prescriptions:
        state = p.exercises.get(exercise)
        value = None if state is None else getattr(state.dose, field)
        if value is not None:
            last = (float(p.week), float(value))
            yield last
    if last is not None:  # (the newest week drawn to its end)
        yield last[0] + 1, last[1]


def _value(decision: Decision, fields: Sequence[str]) -> float:
    """Where a decision's mark sits: on its exercise's first line drawn (the program's own
    pauses, with no exercise, at the foot of the panel)."""
    for name in fields:
        value = getattr(decision.dose_after, name)
        if value is not None:
            return float(value)
    return 0.0


def _actions(axes: Axes, actions: Sequence[ClinicianAction]) -> None:
    """A clinician's resume, override or acknowledgement: a dashed line at its week."""
    for action in actions:
        line = axes.axvline(action.week, color="#444444", linestyle="--", linewidth=1)
        line.set_gid(f"action-{action.id}-{action.kind}")
        axes.annotate(
            action.kind,
            (action.week, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
        )
