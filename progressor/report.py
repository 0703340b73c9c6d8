"""Plain-text views of results: the simulation table, the decision trace, the plugin list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from progressor.core.engine import Engine
from progressor.core.models import StepResult
from progressor.core.plugins import collect_commands


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows aligned under a header; the last column is left ragged."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, ["-" * w for w in widths] + ["-" * len(header[-1])], *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def simulation_table(results: Sequence[StepResult]) -> str:
    """Per week and exercise: the dose done, the action, the next dose and the reason."""
    rows = []
    for week, result in enumerate(results, start=1):
        for d in result.decisions:
            rows.append(
                [
                    str(week),
                    d.exercise,
                    d.dose_before.describe(),
                    d.action,
                    d.dose_after.describe(),
                    d.reason,
                ]
            )
    return table(["week", "exercise", "dose", "action", "next", "reason"], rows)


def decision_trace(result: StepResult, week: int) -> str:
    """Everything behind one week's decisions: each rule, what it saw, which one won."""
    p = result.prescription
    out = [
        f"patient {p.patient}, program {p.program} {p.program_version}, week {week}",
        f"next week: {p.week} from {p.start}, status {p.status}",
        "",
    ]
    for d in result.decisions:
        out.append(f"{d.exercise}: {d.action.upper()} by {d.rule} ({d.plugin})")
        out.append(f"  {d.dose_before.describe()}  ->  {d.dose_after.describe()}")
        out.append(f"  {d.reason}")
        for m in d.matches:
            mark = "*" if m.applied else "-"
            action = m.action or "note"
            seen = ", ".join(f"{k}={v}" for k, v in m.values.items())
            out.append(f"  {mark} {m.rule} [{action}] ({m.plugin}): {m.reason}")
            if seen:
                out.append(f"      saw {seen}")
        out.append("")
    for flag in p.flags:
        where = f" [{flag.exercise}]" if flag.exercise else ""
        out.append(f"flag {flag.code}{where} by {flag.rule} ({flag.plugin}): {flag.message}")
    for alert in result.alerts:
        level = "URGENT alert" if alert.urgent else "alert"
        out.append(f"{level} by {alert.rule} ({alert.plugin}): {alert.message}")
    for item in result.set_aside:
        out.append(f"set aside: {item}")
    return "\n".join(out).rstrip() + "\n"


def plugin_table(engine: Engine) -> list[dict[str, Any]]:
    """Each loaded plugin: where it came from, its hooks, and what it registered, by kind."""
    pm = engine.plugin_manager
    reg = engine.registries
    commands = collect_commands(pm, ())
    rows = []
    for name, plugin in pm.list_name_plugin():
        info = reg.plugins[name]
        registered = {k: sorted(r.by_plugin().get(name, [])) for k, r in reg.kinds().items()}
        registered["commands"] = sorted(n for n, c in commands.items() if c.plugin == name)
        rows.append(
            {
                "name": name,
                "version": info.version,
                "distribution": info.distribution,
                "module": info.module,
                "builtin": info.builtin,
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                "registered": {k: v for k, v in registered.items() if v},
            }
        )
    return sorted(rows, key=lambda row: (not row["builtin"], row["name"]))
