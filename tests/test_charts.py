"""The progress chart: pain and doses over the weeks, decisions and clinician actions."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from progressor.charts import chart_data_from_store, progress_chart
from progressor.errors import ProgressorError
from progressor.store.database import Store
from tests.conftest import START
from tests.handouts import clinic
from tests.test_cli import run

SVG = "{http://www.w3.org/2000/svg}"


def _ids(svg: Path) -> set[str]:
    root = ET.parse(svg).getroot()
    return {e.get("id", "") for e in root.iter(f"{SVG}g")}


def _texts(svg: Path) -> str:
    root = ET.parse(svg).getroot()
    return " ".join("".join(e.itertext()) for e in root.iter(f"{SVG}text"))


def test_show_draws_the_chart_and_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    env = clinic(tmp_path)
    assert run("resume", "ben", "--note", "settled", env=env).returncode == 0
    week3 = START + dt.timedelta(days=14)
    assert run("recompute", "--week", week3.isoformat(), env=env).returncode == 0
    svg = tmp_path / "ben.svg"
    done = run("show", "ben", "--chart", str(svg), env=env)
    assert done.returncode == 0, done.stderr
    assert 'patient = "ben"' in done.stdout  # (the prescription is printed as before)
    ids = _ids(svg)
    for series in ("pain-before", "pain-during", "pain-after", "pain-reported"):
        assert series in ids, series
    assert {"dose-pelvic-tilt-reps", "dose-bridge-reps", "dose-knee-to-chest-hold_s"} <= ids
    assert {"decision-progress", "decision-pause"} <= ids
    assert any(i.startswith("action-") and i.endswith("-resume") for i in ids)
    texts = _texts(svg)
    assert "ben: Low back pain: home exercise program" in texts
    assert "Bridge: reps" in texts and "resume" in texts

    again = tmp_path / "again.svg"
    assert run("show", "ben", "--chart", str(again), env=env).returncode == 0
    assert again.read_bytes() == svg.read_bytes()

    png = tmp_path / "ben.png"
    assert run("show", "ben", "--chart", str(png), env=env).returncode == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_chart_the_pages_can_draw_from_the_store(tmp_path: Path) -> None:
    env = clinic(tmp_path)
    with Store.open(Path(env["PROGRESSOR_STORE"])) as store:
        data = chart_data_from_store(store, "anna")
    assert [p.week for p in data.prescriptions] == [1, 2, 3]
    assert progress_chart(data, "svg") == progress_chart(data, ".svg")
    with pytest.raises(ProgressorError, match=r"a chart is \.svg or \.png, not '\.gif'"):
        progress_chart(data, ".gif")


def test_a_chart_in_an_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    env = clinic(tmp_path)
    done = run("show", "anna", "--chart", str(tmp_path / "anna.gif"), env=env)
    assert done.returncode == 1
    assert "error: a chart is .svg or .png, not '.gif'" in done.stderr
    assert "Traceback" not in done.stderr
