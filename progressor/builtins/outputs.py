"""Built-in exporters (toml, json) and the built-in alert channel (stderr)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from progressor import hookimpl
from progressor.core.components import AlertChannel, Exporter
from progressor.core.models import Alert, Program, StepResult
from progressor.export import prescription_document, to_json, to_toml


class TomlExporter(Exporter):
    name = "toml"
    description = "next week's prescription as TOML (tomli-w)"
    suffix = ".toml"

    def export(self, program: Program, result: StepResult) -> str:
        return to_toml(prescription_document(program, result))


class JsonExporter(Exporter):
    name = "json"
    description = "next week's prescription as JSON"
    suffix = ".json"

    def export(self, program: Program, result: StepResult) -> str:
        return to_json(prescription_document(program, result))


class StderrChannel(AlertChannel):
    name = "stderr"
    description = "writes each alert as one JSON line on standard error"

    def send(self, alert: Alert, target: str) -> None:
        sys.stderr.write(json.dumps({"alert": alert.model_dump(mode="json")}) + "\n")


@hookimpl
def progressor_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(TomlExporter())
    register(JsonExporter())


@hookimpl
def progressor_register_alert_channels(register: Callable[[AlertChannel], None]) -> None:
    register(StderrChannel())
