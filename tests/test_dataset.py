"""Partitioned datasets: local and Dask executors agree; reruns resume, never duplicate."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

import progressor
from progressor.dataset import merge, partitions, run_dask, run_local
from progressor.synth import synthesize_dataset
from tests.conftest import PROGRAMS, START

WEEKS = 3
AS_OF = START + dt.timedelta(days=7 * WEEKS)


def outputs(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.jsonl"))
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    location = tmp_path_factory.mktemp("clinic")
    engine = progressor.Engine()
    programs = []
    for name in ("low-back-pain", "achilles-tendinopathy", "graded-walking"):
        path = PROGRAMS / f"{name}.toml"
        programs.append(
            (engine.compile(progressor.load_program(path)), path.read_text(encoding="utf-8"))
        )
    synthesize_dataset(str(location), programs, patients=240, weeks=WEEKS, seed=5, partitions=6)
    return location


def test_local_runs_agree_for_any_worker_count(dataset: Path, tmp_path: Path) -> None:
    one = merge(run_local(str(dataset), str(tmp_path / "one"), AS_OF, workers=1))
    two = merge(run_local(str(dataset), str(tmp_path / "two"), AS_OF, workers=2))
    assert one == two and one["patients"] == 240 and one["partitions"] == 6
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert sum(one["actions"].values()) > 240


def test_a_rerun_skips_finished_partitions_and_resumes_the_rest(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parts = partitions(str(dataset))
    run_local(str(dataset), str(out), AS_OF, workers=1, parts=parts[:2])  # "killed" after two
    again = run_local(str(dataset), str(out), AS_OF, workers=1)
    assert [s.skipped for s in again] == [True, True] + [False] * (len(parts) - 2)
    clean = tmp_path / "clean"
    run_local(str(dataset), str(clean), AS_OF, workers=1)
    assert outputs(out) == outputs(clean)


def test_dask_and_local_executors_agree(dataset: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = merge(run_dask(str(dataset), str(tmp_path / "dask"), AS_OF, client))
    local = merge(run_local(str(dataset), str(tmp_path / "local"), AS_OF, workers=1))
    assert on_dask == local
    assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")


def test_new_data_recomputes_only_its_patients_and_equals_a_full_run(
    dataset: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    out = tmp_path / "out"
    run_local(str(copy), str(out), AS_OF, workers=1)
    part = partitions(str(copy))[0]
    records = copy / "records" / f"part-{part:05d}.jsonl"
    patient = json.loads(records.read_text(encoding="utf-8").splitlines()[0])["patient"]
    flare = {"kind": "pain", "patient": patient, "pain": 9, "date": "2026-01-20"}
    with records.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(flare) + "\n")
    again = merge(run_local(str(copy), str(out), AS_OF, workers=1))
    assert again["skipped"] == len(partitions(str(copy))) - 1
    clean = tmp_path / "clean"
    assert merge(run_local(str(copy), str(clean), AS_OF, workers=1)) == {**again, "skipped": 0}
    assert outputs(out) == outputs(clean)
    [line] = [
        line
        for line in (out / "prescriptions" / f"part-{part:05d}.jsonl").read_text().splitlines()
        if json.loads(line)["patient"] == patient
    ]
    assert json.loads(line)["status"] == "paused"


def test_a_dataset_at_a_url(tmp_path: Path) -> None:
    # fsspec's in-memory filesystem stands in for s3:// or gs:// (one process: workers=1).
    pytest.importorskip("fsspec")
    engine = progressor.Engine()
    text = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
    compiled = engine.compile(progressor.parse_program(text))
    synthesize_dataset("memory://clinic/in", [(compiled, text)], 30, WEEKS, 3, 3)
    on_url = merge(run_local("memory://clinic/in", "memory://clinic/out", AS_OF, workers=1))
    assert on_url["patients"] == 30 and on_url["partitions"] == 3
    again = merge(run_local("memory://clinic/in", "memory://clinic/out", AS_OF, workers=1))
    assert again["skipped"] == 3
