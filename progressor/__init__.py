"""progressor: a rules engine for exercise-program progression.

The public API is exactly what ``__all__`` lists; every other module is private.
"""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("progressor")

from progressor.core.components import (  # noqa: E402  (hookimpl must exist before plugins import)
    AlertChannel,
    ExerciseType,
    Exporter,
    Finding,
    NoParams,
    Proposal,
    SafetyRule,
    Strategy,
)
from progressor.core.engine import CompiledProgram, Engine  # noqa: E402
from progressor.core.models import (  # noqa: E402
    Action,
    Alert,
    Decision,
    Dose,
    Enrollment,
    Exercise,
    ExerciseState,
    Flag,
    History,
    Limits,
    Outcome,
    PainReport,
    Prescription,
    Program,
    Record,
    RuleMatch,
    SetAside,
    StepResult,
)
from progressor.core.plugins import DEFAULT_PLUGINS, get_plugin_manager  # noqa: E402
from progressor.core.timeline import ClinicianAction, Timeline, fold  # noqa: E402
from progressor.core.week import ExerciseWeek, Session, WeekView  # noqa: E402
from progressor.errors import (  # noqa: E402
    LogError,
    PluginError,
    Problem,
    ProgramError,
    ProgressorError,
    ScenarioError,
    StoreError,
    did_you_mean,
)
from progressor.reading import load_log, load_program, parse_program  # noqa: E402

__all__ = [
    "DEFAULT_PLUGINS",
    "Action",
    "Alert",
    "AlertChannel",
    "ClinicianAction",
    "CompiledProgram",
    "Decision",
    "Dose",
    "Engine",
    "Enrollment",
    "Exercise",
    "ExerciseState",
    "ExerciseType",
    "ExerciseWeek",
    "Exporter",
    "Finding",
    "Flag",
    "History",
    "Limits",
    "LogError",
    "NoParams",
    "Outcome",
    "PainReport",
    "PluginError",
    "Prescription",
    "Problem",
    "Program",
    "ProgramError",
    "ProgressorError",
    "Proposal",
    "Record",
    "RuleMatch",
    "SafetyRule",
    "ScenarioError",
    "Session",
    "SetAside",
    "StepResult",
    "StoreError",
    "Strategy",
    "Timeline",
    "WeekView",
    "did_you_mean",
    "fold",
    "get_plugin_manager",
    "hookimpl",
    "load_log",
    "load_program",
    "parse_program",
]
