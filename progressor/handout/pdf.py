"""A handout's HTML printed to PDF by headless Chromium (Debian's `chromium`).

The browser is $PROGRESSOR_CHROMIUM, else the first of `chromium`, `chromium-browser`,
`google-chrome` found in PATH. Its PDF is made stable: the creation and modification dates
Chromium writes are replaced by a fixed date of the same length (the offsets stay valid).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from progressor.errors import ProgressorError

CHROMIUM_ENV = "PROGRESSOR_CHROMIUM"
_NAMES = ("chromium", "chromium-browser", "google-chrome")
_TIMEOUT_S = 120  # a cold start on a loaded machine takes seconds; a hung browser is stopped
_DATE = re.compile(rb"\(D:\d{14}")
_FIXED = b"(D:20000101000000"


def chromium(environ: Mapping[str, str] | None = None) -> str:
    """The browser's executable, or an error saying how to install or name one."""
    environ = os.environ if environ is None else environ
    named = environ.get(CHROMIUM_ENV)
    if named:
        found = shutil.which(named)
        if found is None:
            raise ProgressorError(f"{CHROMIUM_ENV}={named}: no such executable")
        return found
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ProgressorError(
        "a PDF handout needs headless Chromium, and none was found in PATH: install it "
        f"(apt-get install chromium) or name it in {CHROMIUM_ENV}; --format html needs none"
    )


def html_to_pdf(html: str) -> bytes:
    """`html` printed to PDF (A4, no browser header or footer)."""
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="progressor-pdf-") as tmp:
        page, pdf = Path(tmp, "handout.html"), Path(tmp, "handout.pdf")
        page.write_text(html, encoding="utf-8")
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # (as root, in a container, Chromium's sandbox cannot start)
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp}/profile",  # (a run of its own: no shared profile lock)
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ProgressorError(
                f"{browser} did not print the handout in {_TIMEOUT_S} s"
            ) from None
        except OSError as exc:
            raise ProgressorError(f"cannot run {browser}: {exc.strerror}") from None
        if done.returncode != 0 or not pdf.is_file():
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise ProgressorError(
                f"{browser} could not print the handout (exit {done.returncode}): "
                + " / ".join(tail)
            )
        return _stable(pdf.read_bytes())


def _stable(pdf: bytes) -> bytes:
    """The PDF with its dates fixed (each kept at its length, so every offset still holds)."""
    return _DATE.sub(_FIXED, pdf)
