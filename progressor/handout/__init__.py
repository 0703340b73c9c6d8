"""The patient's handout: next week in plain words, as HTML (jinja2) and as PDF (Chromium).

`handout_html(program, result, clinic)` is what the `html` exporter writes and the `pdf`
exporter prints; `progressor next --format html|pdf` and `progressor handout` call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from progressor.core.models import Program, StepResult
from progressor.handout.document import Handout, handout_of
from progressor.handout.pdf import html_to_pdf
from progressor.handout.settings import Clinic, clinic_from_env

if TYPE_CHECKING:
    import jinja2

__all__ = ["Clinic", "Handout", "clinic_from_env", "handout_html", "handout_of", "handout_pdf"]


def _environment() -> jinja2.Environment:
    # (Imported here: every engine loads the handout exporters, few runs write a handout, and
    # importing jinja2 took a fifth of a short recompute's own CPU.)
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("progressor.handout", "templates"),
        autoescape=True,  # (the program's and the clinic's words are text, never markup)
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def handout_html(program: Program, result: StepResult, clinic: Clinic) -> str:
    """The handout of the week `result` prescribes, as an HTML page."""
    template = _environment().get_template("handout.html.j2")
    return template.render(h=handout_of(program, result, clinic))


def handout_pdf(program: Program, result: StepResult, clinic: Clinic) -> bytes:
    """The same page printed to PDF by headless Chromium."""
    return html_to_pdf(handout_html(program, result, clinic))
