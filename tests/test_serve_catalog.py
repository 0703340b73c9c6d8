"""The service's programs: a shipped program whose plugin package is not installed is left
out (a request naming it says why), where a directory of the clinic's own refuses the start."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest

from progressor.core.engine import Engine
from progressor.errors import ProgramError
from progressor.serve.catalog import Catalog
from tests.conftest import PROGRAMS

NEEDY = (
    (PROGRAMS / "low-back-pain.toml")
    .read_text(encoding="utf-8")
    .replace(
        'id = "low-back-pain"',
        'id = "needs-a-plugin"\nrequires = [{ name = "progressor-nowhere", version = ">=1" }]',
        1,
    )
)


def _directory(tmp_path: Path) -> Path:
    shutil.copy(PROGRAMS / "low-back-pain.toml", tmp_path)
    (tmp_path / "needs-a-plugin.toml").write_text(NEEDY, encoding="utf-8")
    return tmp_path


def test_a_shipped_program_whose_plugin_is_missing_is_left_out_and_says_why(
    tmp_path: Path,
) -> None:
    catalog = Catalog(Engine(), _directory(tmp_path), shipped=True)
    assert len(catalog) == 1
    assert catalog.named("low-back-pain", None).program.id == "low-back-pain"
    assert set(catalog.unavailable) == {"needs-a-plugin"}
    with pytest.raises(
        LookupError,
        match="not available on this server: needs the plugin "
        r"package 'progressor-nowhere>=1', which is not installed \(install it",
    ):
        catalog.named("needs-a-plugin", None)


def test_a_clinic_directory_with_such_a_program_refuses_the_start(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="progressor-nowhere"):
        Catalog(Engine(), _directory(tmp_path))


def test_the_shipped_programs_serve_without_the_example_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = importlib.metadata.version

    def version(name: str) -> str:
        if name == "progressor-repeated-movements":
            raise importlib.metadata.PackageNotFoundError(name)
        return found(name)

    installed = Catalog(Engine(entry_points=True), PROGRAMS, shipped=True)
    assert installed.unavailable == {}  # (make test installs the example plugins)
    monkeypatch.setattr(importlib.metadata, "version", version)
    catalog = Catalog(Engine(entry_points=True), PROGRAMS, shipped=True)
    assert "lumbar-extension" in catalog.unavailable
    assert len(catalog) == len(list(PROGRAMS.glob("*.toml"))) - 1
