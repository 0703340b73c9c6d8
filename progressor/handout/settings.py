"""The clinic's name and contact, printed on every handout: a [clinic] table in a settings file.

PROGRESSOR_SETTINGS names the file (TOML); without it, `progressor.toml` in the current
directory is read when it exists. A handout without a clinic says "your clinic".
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from progressor.errors import ProgressorError, did_you_mean

SETTINGS_ENV = "PROGRESSOR_SETTINGS"
DEFAULT_SETTINGS = Path("progressor.toml")
_KEYS = ("name", "contact")


@dataclass(frozen=True)
class Clinic:
    """Who the patient calls: the clinic's name and contact (a phone number, an address)."""

    name: str = "your clinic"
    contact: str = ""


def clinic_from_env(environ: Mapping[str, str] | None = None) -> Clinic:
    """The clinic of the settings file PROGRESSOR_SETTINGS names (or ./progressor.toml)."""
    environ = os.environ if environ is None else environ
    named = environ.get(SETTINGS_ENV)
    if named:
        return read_clinic(Path(named))
    return read_clinic(DEFAULT_SETTINGS) if DEFAULT_SETTINGS.is_file() else Clinic()


def read_clinic(path: Path) -> Clinic:
    """The [clinic] table of a settings file; a missing file or a bad key is a clear error."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProgressorError(f"{path}: cannot read the settings ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProgressorError(f"{path}: not a TOML settings file ({exc})") from None
    table = data.get("clinic", {})
    if not isinstance(table, dict):
        raise ProgressorError(f"{path}: [clinic] must be a table with name and contact")
    for key, value in table.items():
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS)
            raise ProgressorError(
                f"{path}: clinic.{key}: not a clinic setting"
                + (f" ({hint})" if hint else f"; settings: {', '.join(_KEYS)}")
            )
        if not isinstance(value, str):
            raise ProgressorError(f'{path}: clinic.{key}: must be a string, e.g. "..."')
    return Clinic(**table)
