"""Built-in handout exporters: the patient's week in plain words as HTML and as PDF.

The clinic printed on the handout comes from the settings file (progressor.handout.settings),
read when a handout is made, so that an engine built once serves a changed setting.
"""

from __future__ import annotations

from collections.abc import Callable

from progressor import hookimpl
from progressor.core.components import Exporter
from progressor.core.models import Program, StepResult
from progressor.errors import ProgressorError
from progressor.handout import Clinic, clinic_from_env, handout_html, handout_pdf


class HtmlHandout(Exporter):
    name = "html"
    description = "the patient's handout for next week, as an HTML page"
    suffix = ".html"

    def __init__(self, clinic: Clinic | None = None) -> None:
        self.clinic = clinic  # None: the settings file's, when the handout is made

    def export(self, program: Program, result: StepResult) -> str:
        return handout_html(program, result, self.clinic or clinic_from_env())


class PdfHandout(Exporter):
    name = "pdf"
    description = "the patient's handout for next week, printed to PDF by headless Chromium"
    suffix = ".pdf"
    binary = True

    def __init__(self, clinic: Clinic | None = None) -> None:
        self.clinic = clinic

    def export(self, program: Program, result: StepResult) -> str:
        raise ProgressorError("the pdf format is binary: write it with export_bytes (--output)")

    def export_bytes(self, program: Program, result: StepResult) -> bytes:
        return handout_pdf(program, result, self.clinic or clinic_from_env())


@hookimpl
def progressor_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(HtmlHandout())
    register(PdfHandout())
