"""Partitioned datasets: local and Dask executors agree; reruns resume, never duplicate."""

from __future__ import annotations

import datetime as dt
import json
import marshal
import shutil
from pathlib import Path
from typing import Any

import pytest

import progressor
import progressor.dataset.files
import progressor.dataset.partition
from progressor.dataset import TABLES_OUT as TABLES
from progressor.dataset.run import merge, partitions, run_dask, run_local
from progressor.synth import synthesize_dataset
from tests.conftest import PROGRAMS, START, compiled_programs

WEEKS = 3
AS_OF = START + dt.timedelta(days=7 * WEEKS)


def outputs(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.jsonl"))
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    location = tmp_path_factory.mktemp("clinic")
    programs = compiled_programs()
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


def test_an_upgrade_or_another_block_list_computes_every_partition_again(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    parts = partitions(str(dataset))[:2]
    run_local(str(dataset), str(out), AS_OF, workers=1, parts=parts)
    assert all(s.skipped for s in run_local(str(dataset), str(out), AS_OF, 1, parts=parts))
    monkeypatch.setattr(
        progressor.core.plugins, "code_versions", lambda plugins=(): (("progressor", "99.0"),)
    )
    assert not any(s.skipped for s in run_local(str(dataset), str(out), AS_OF, 1, parts=parts))
    again = run_local(str(dataset), str(out), AS_OF, 1, block=["ladder"], parts=parts)
    assert not any(s.skipped for s in again)


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


def _first_part(location: Path, table: str) -> Path:
    return location / table / f"part-{partitions(str(location))[0]:05d}.jsonl"


def _append(path: Path, *rows: dict[str, object] | str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


def _flare(copy: Path) -> set[str]:
    records = _first_part(copy, "records")
    patient = json.loads(records.read_text(encoding="utf-8").splitlines()[0])["patient"]
    _append(records, {"kind": "pain", "patient": patient, "pain": 9, "date": "2026-01-20"})
    return {patient}


def _new_patient(copy: Path) -> set[str]:
    enrollments = _first_part(copy, "enrollments")
    first = json.loads(enrollments.read_text(encoding="utf-8").splitlines()[0])
    _append(enrollments, {**first, "patient": "zz-new"})
    _append(
        _first_part(copy, "records"),
        {"kind": "pain", "patient": "zz-new", "pain": 2, "date": "2026-01-06"},
    )
    return {"zz-new"}


def _not_enrolled(copy: Path) -> None:
    _append(
        _first_part(copy, "records"),
        {"kind": "pain", "patient": "nobody", "pain": 2, "date": "2026-01-06"},
    )


def _spelled_otherwise(copy: Path) -> None:
    records = _first_part(copy, "records")
    patient = json.loads(records.read_text(encoding="utf-8").splitlines()[0])["patient"]
    spelled = {"kind": "pain", "patient": patient.upper(), "pain": 9, "date": "2026-01-20"}
    _append(records, spelled)


def _no_patient(copy: Path) -> None:
    _append(_first_part(copy, "records"), {"kind": "pain", "pain": 2, "date": "2026-01-06"})


def _rewritten(copy: Path) -> None:
    records = _first_part(copy, "records")
    lines = records.read_text(encoding="utf-8").splitlines()
    middle = json.loads(lines[len(lines) // 2])
    lines[len(lines) // 2] = json.dumps({**middle, "pain_before": 9})
    records.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "change",
    [_flare, _new_patient, _not_enrolled, _spelled_otherwise, _no_patient, _rewritten],
    ids=lambda f: f.__name__.strip("_"),
)
def test_any_change_to_the_inputs_gives_what_a_clean_run_gives(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    copy, out, clean = tmp_path / "copy", tmp_path / "out", tmp_path / "clean"
    shutil.copytree(dataset, copy)
    run_local(str(copy), str(out), AS_OF, workers=1)
    computed: list[str] = []
    full_runs: list[int] = []
    run_class = progressor.dataset.partition._Run
    compute, full = run_class._compute, run_class.full

    def spy_compute(run: Any, patients: list[str], *args: Any) -> Any:
        computed.extend(patients)
        return compute(run, patients, *args)

    def spy_full(run: Any, *args: Any) -> Any:
        full_runs.append(run.part)
        return full(run, *args)

    rewritten: list[str] = []
    rename = progressor.dataset.files.rename

    def spy_rename(source: str, target: str) -> None:
        rewritten.append(Path(target).parent.name)
        rename(source, target)

    monkeypatch.setattr(run_class, "_compute", spy_compute)
    monkeypatch.setattr(run_class, "full", spy_full)
    monkeypatch.setattr(progressor.dataset.files, "rename", spy_rename)
    touched = change(copy)
    again = merge(run_local(str(copy), str(out), AS_OF, workers=1))
    assert again["skipped"] == len(partitions(str(copy))) - 1
    if touched is not None:  # only new lines of enrolled patients: only they are read again
        assert set(computed) == touched and not full_runs
    else:  # anything else: every patient of the partition is hashed again
        assert full_runs == [partitions(str(copy))[0]]
        # (A patient whose line changed; one with records and no enrollment: not computed,
        # but their lines set aside and an alert written; and with an id spelled otherwise,
        # the patient it names too.)
        expected = {_rewritten: 1, _not_enrolled: 1, _spelled_otherwise: 2}.get(change, 0)
        assert len(computed) == expected
    if change is _flare:  # a table none of whose bytes change is left alone
        assert "alerts" in rewritten and "set_aside" not in rewritten
    monkeypatch.undo()
    assert merge(run_local(str(copy), str(clean), AS_OF, workers=1)) == {**again, "skipped": 0}
    assert outputs(out) == outputs(clean)
    # And a run after that one, with nothing new, changes nothing.
    assert merge(run_local(str(copy), str(out), AS_OF, workers=1))["skipped"] == again["partitions"]
    assert outputs(out) == outputs(clean)


def test_a_run_killed_while_writing_a_partition_then_run_again_equals_a_clean_run(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy, out, clean = tmp_path / "copy", tmp_path / "out", tmp_path / "clean"
    shutil.copytree(dataset, copy)
    run_local(str(copy), str(out), AS_OF, workers=1)
    _flare(copy)
    rename, renamed = progressor.dataset.files.rename, []

    def dying(source: str, target: str) -> None:
        if len(renamed) == 2:  # two of the partition's tables rewritten, then killed
            raise KeyboardInterrupt
        renamed.append(target)
        rename(source, target)

    monkeypatch.setattr(progressor.dataset.files, "rename", dying)
    with pytest.raises(KeyboardInterrupt):
        run_local(str(copy), str(out), AS_OF, workers=1)
    monkeypatch.undo()
    again = merge(run_local(str(copy), str(out), AS_OF, workers=1))
    assert merge(run_local(str(copy), str(clean), AS_OF, workers=1)) == {**again, "skipped": 0}
    assert outputs(out) == outputs(clean)


def _delete_table(out: Path, part: int) -> None:
    (out / "decisions" / f"part-{part:05d}.jsonl").unlink()


def _truncate_table(out: Path, part: int) -> None:
    with (out / "decisions" / f"part-{part:05d}.jsonl").open("r+b") as handle:
        handle.truncate(1000)


def _damage_index(out: Path, part: int) -> None:
    index = out / "_index" / f"part-{part:05d}.idx"
    index.write_bytes(index.read_bytes()[:100])  # torn: its checksum no longer holds


def _damage_index_numbers(out: Path, part: int) -> None:
    index = out / "_index" / f"part-{part:05d}.idx"
    data = index.read_bytes()
    head = data.index(b"\n") + 1 + 4  # (the checksum: 4 bytes after the magic line)
    fields = marshal.loads(data[head:])
    fields["offsets"]["decisions"][1] += 1  # still a readable index, a number wrong
    index.write_bytes(data[:head] + marshal.dumps(fields))


def _index_of_another_python(out: Path, part: int) -> None:
    index = out / "_index" / f"part-{part:05d}.idx"
    data = index.read_bytes()
    line = data.index(b"\n")
    # (the same bytes, said to be of another marshal version: they might not mean the same)
    index.write_bytes(f"progressor-index {marshal.version + 1}".encode() + data[line:])


@pytest.mark.parametrize(
    "damage",
    [
        _delete_table,
        _truncate_table,
        _damage_index,
        _damage_index_numbers,
        _index_of_another_python,
    ],
    ids=lambda f: f.__name__[1:],
)
def test_a_damaged_output_makes_its_partition_compute_afresh(
    dataset: Path, tmp_path: Path, damage: Any
) -> None:
    out, clean = tmp_path / "out", tmp_path / "clean"
    run_local(str(dataset), str(out), AS_OF, workers=1)
    damage(out, partitions(str(dataset))[0])
    again = merge(run_local(str(dataset), str(out), AS_OF, workers=1))
    assert again["skipped"] == len(partitions(str(dataset))) - 1
    run_local(str(dataset), str(clean), AS_OF, workers=1)
    assert outputs(out) == outputs(clean)


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


@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "blocks"])
def test_copy_range_appends_exactly_the_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool
) -> None:
    if not kernel:
        monkeypatch.delattr("os.copy_file_range", raising=False)
    monkeypatch.setattr(progressor.dataset.files, "BLOCK", 7)  # several blocks
    source = tmp_path / "source"
    source.write_bytes(bytes(range(256)) * 3)
    with open(source, "rb") as read, open(tmp_path / "target", "wb") as write:
        write.write(b"head")  # buffered, not yet on disk: it must stay first
        progressor.dataset.files.copy_range(read, write, 10, 300)
        write.write(b"tail")
        progressor.dataset.files.copy_range(read, write, 0, 0)
        progressor.dataset.files.copy_range(read, write, 700, 768)
    expected = b"head" + source.read_bytes()[10:300] + b"tail" + source.read_bytes()[700:768]
    assert (tmp_path / "target").read_bytes() == expected
    with (
        open(source, "rb") as read,
        open(tmp_path / "short", "wb") as write,
        pytest.raises(progressor.ProgressorError, match="shorter than its index says"),
    ):
        progressor.dataset.files.copy_range(read, write, 700, 800)


def _seed_program_dataset(data: Path) -> None:
    """An empty input dataset at `data` with the seed program: tests write its lines."""
    for folder in ("enrollments", "records", "programs"):
        (data / folder).mkdir(parents=True)
    shutil.copy(PROGRAMS / "low-back-pain.toml", data / "programs")


def test_records_set_aside_in_any_replayed_week_are_reported(tmp_path: Path) -> None:
    # Paused by a flare in week 1; in week 2 an outcome names an unknown exercise. The run
    # as of week 3 writes week 3's decisions, and still reports the week-2 record.
    data, out = tmp_path / "data", tmp_path / "out"
    _seed_program_dataset(data)
    enrollment = {"patient": "anna", "program": "low-back-pain", "start": START.isoformat()}
    (data / "enrollments" / "part-00000.jsonl").write_text(json.dumps(enrollment) + "\n")
    records = [
        {"kind": "pain", "patient": "anna", "date": "2026-01-06", "pain": 9},
        {"kind": "outcome", "patient": "anna", "date": "2026-01-13", "exercise": "brige"},
    ]
    (data / "records" / "part-00000.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )
    run_local(str(data), str(out), START + dt.timedelta(days=21), workers=1)
    reported = (out / "set_aside" / "part-00000.jsonl").read_text()
    assert "unknown exercise 'brige'" in reported and "2026-01-13" in reported
    # The flare that paused week 1 is in the alerts, though the newest week only says the
    # pause goes on: every alert so far reaches a clinician.
    alerts = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    assert [(a["week"], a["rule"]) for a in alerts] == [(1, "pain-flare")]
    # At its line, with its text, as the log reader's set-asides are.
    [row] = [json.loads(line) for line in reported.splitlines()]
    assert (row["source"], row["line"], row["record"]) == (
        "records/part-00000.jsonl",
        2,
        json.dumps(records[1]),
    )


def test_bad_lines_are_set_aside_with_their_file_and_line_and_the_rest_is_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out, clean = tmp_path / "data", tmp_path / "out", tmp_path / "clean"
    _seed_program_dataset(data)

    def enrolled(patient: str, **changes: str) -> str:
        row = {"patient": patient, "program": "low-back-pain", "start": START.isoformat()}
        return json.dumps({**row, **changes})

    enrollments = [
        enrolled("anna"),
        enrolled("ben", start="2026-13-05"),  # line 2: no such month
        enrolled("cleo", program="knee-rehab"),  # line 3: no such program
        enrolled("dan"),  # lines 4 and 5: enrolled twice, differently
        enrolled("dan", start="2026-01-12"),
        enrolled("eve"),
        enrolled("eve").replace(", ", ",") + "\r",  # eve again, written differently: the same
    ]
    bridge = {"kind": "outcome", "exercise": "bridge", "reps": [5], "hold_s": 5, "pain_during": 2}
    records = [
        json.dumps({**bridge, "patient": "anna", "date": "2026-01-06"}),
        "",  # a blank line counts as a line, as in an editor
        json.dumps({**bridge, "patient": "anna", "date": "2026-01-07", "pain_durin": 2}),
        json.dumps({**bridge, "date": "2026-01-07"}),  # line 4: no patient
        json.dumps({**bridge, "patient": "eve", "date": "2026-01-08"}),
        '{"kind": "pain", "patient": "eve", "date": "2026-01-08", "pain": ',  # line 6: cut off
        json.dumps({**bridge, "patient": "ben", "date": "2026-01-08"}),
        # line 8: cleo's flare: not computed (no such program), still an urgent alert
        json.dumps({"kind": "pain", "patient": "cleo", "date": "2026-01-09", "pain": 9}),
    ]
    (data / "enrollments" / "part-00000.jsonl").write_text("\n".join(enrollments) + "\n")
    # Windows line ends: still one line each.
    (data / "records" / "part-00000.jsonl").write_bytes("\r\n".join(records).encode() + b"\r\n")
    summary = merge(run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1))
    assert summary["patients"] == 2  # anna and eve computed; ben, cleo and dan not
    rows = [json.loads(line) for line in (out / "set_aside" / "part-00000.jsonl").open()]
    where = [(r.get("patient"), r.get("source"), r.get("line")) for r in rows]
    assert where == [
        ("anna", "records/part-00000.jsonl", 3),
        ("ben", "enrollments/part-00000.jsonl", 2),
        ("ben", "records/part-00000.jsonl", 7),  # not used: ben is not computed
        ("cleo", "enrollments/part-00000.jsonl", 3),
        ("cleo", "records/part-00000.jsonl", 8),
        ("dan", "enrollments/part-00000.jsonl", 4),
        ("dan", "enrollments/part-00000.jsonl", 5),
        ("eve", "records/part-00000.jsonl", 6),
        (None, None, None),
    ]
    assert "pain_durin: unknown field (did you mean 'pain_during'?)" in rows[0]["reason"]
    assert rows[0]["record"] == records[2]
    assert rows[1]["reason"].startswith("start: ")
    assert rows[2]["reason"].startswith("not used: the patient is not computed")
    assert "unknown program 'knee-rehab' (programs/ holds: low-back-pain)" in rows[3]["reason"]
    assert "\r" not in rows[3]["record"]
    assert "one of 2 different enrollments" in rows[5]["reason"]
    assert rows[7]["reason"].startswith("not valid JSON")
    assert rows[8]["problem"].startswith("records/part-00000.jsonl line 4: a record without")
    assert not rows[8]["problem"].endswith("\r")
    # No prescription is no reason for silence: each patient not computed who logged
    # anything gets an alert, urgent with a flare.
    alerts = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    assert [(a["patient"], a["rule"], a["urgent"]) for a in alerts] == [
        ("ben", "enrollment", False),
        ("cleo", "enrollment", True),
    ]
    assert "pain up to 9/10" in alerts[1]["message"]
    assert summary["alerts"] == 2
    prescribed = [
        json.loads(line)["patient"]
        for line in (out / "prescriptions" / "part-00000.jsonl").read_text().splitlines()
    ]
    assert prescribed == ["anna", "eve"]
    # Appended lines are numbered where they are in the file, as a clean run numbers them.
    with (data / "records" / "part-00000.jsonl").open("ab") as handle:
        late = json.dumps({**bridge, "patient": "eve", "date": "2026-01-09", "reps": "five"})
        handle.write(late.encode() + b"\r\n")
    monkeypatch.setattr(progressor.dataset.files, "BLOCK", 5)  # \r\n split between blocks
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    run_local(str(data), str(clean), START + dt.timedelta(days=7), workers=1)
    assert outputs(out) == outputs(clean)
    late_row = json.loads((out / "set_aside" / "part-00000.jsonl").read_text().splitlines()[8])
    assert (late_row["patient"], late_row["line"]) == ("eve", 9)


def test_a_record_the_step_sets_aside_is_reported_at_its_line(tmp_path: Path) -> None:
    # The step names a record by its date and exercise; the run finds its line, past a line
    # the log reader set aside (its pain kept for safety) and a blank one.
    data, out = tmp_path / "data", tmp_path / "out"
    _seed_program_dataset(data)
    enrollment = {"patient": "anna", "program": "low-back-pain", "start": START.isoformat()}
    (data / "enrollments" / "part-00000.jsonl").write_text(json.dumps(enrollment) + "\n")
    bridge = {"kind": "outcome", "patient": "anna", "exercise": "bridge", "reps": [5]}
    lines = [
        json.dumps({**bridge, "date": "2026-01-06", "hold_s": 5, "pain_befor": 2}),  # salvaged
        "",
        json.dumps({**bridge, "date": "2026-01-07", "hold_s": 5, "pain_before": 2}),
        json.dumps({**bridge, "date": "2026-01-08", "exercise": "bridgee", "hold_s": 5}),
    ]
    (data / "records" / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    rows = [json.loads(line) for line in (out / "set_aside" / "part-00000.jsonl").open()]
    assert [(r["line"], r["record"]) for r in rows] == [(1, lines[0]), (4, lines[3])]
    assert "pain_befor: unknown field" in rows[0]["reason"]
    assert "unknown exercise 'bridgee'" in rows[1]["reason"]


def test_a_flare_in_the_week_under_way_is_alerted_now_and_week_one_is_not_judged(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _seed_program_dataset(data)
    as_of = START + dt.timedelta(days=3)
    enrolled = [
        {"patient": "wen", "program": "low-back-pain", "start": START.isoformat()},  # week 1
        {"patient": "xia", "program": "low-back-pain", "start": "2025-12-22"},  # week 3
    ]
    flare = {"kind": "pain", "date": (START + dt.timedelta(days=1)).isoformat(), "pain": 9}
    (data / "enrollments" / "part-00000.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in enrolled)
    )
    (data / "records" / "part-00000.jsonl").write_text(
        "".join(json.dumps({**flare, "patient": p}) + "\n" for p in ("wen", "xia"))
    )
    summary = merge(run_local(str(data), str(out), as_of, workers=1))
    prescriptions = {
        p["patient"]: p
        for p in map(json.loads, (out / "prescriptions" / "part-00000.jsonl").open())
    }
    decisions = [json.loads(line) for line in (out / "decisions" / "part-00000.jsonl").open()]
    alerts = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    # wen: week 1 as prescribed, nothing decided (no week has ended), the flare alerted now.
    assert prescriptions["wen"]["week"] == 1
    assert not [d for d in decisions if d["patient"] == "wen"]
    # xia: weeks 1-2 judged (no session in two weeks: adherence regresses), week 3 under
    # way, its flare alerted now.
    assert prescriptions["xia"]["week"] == 3
    xia = {(d["week"], d["action"]) for d in decisions if d["patient"] == "xia"}
    assert xia == {(2, "regress")}
    assert sorted((a["patient"], a["week"], a["rule"]) for a in alerts) == [
        ("wen", 1, "pain-flare"),
        ("xia", 3, "pain-flare"),
    ]
    assert summary["alerts"] == 2


def test_an_enrollment_whose_patient_id_cannot_be_computed_is_set_aside(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _seed_program_dataset(data)
    rows = [
        {"patient": p, "program": "low-back-pain", "start": START.isoformat()}
        for p in ("anna", "an\tna")
    ]
    (data / "enrollments" / "part-00000.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    [row] = [json.loads(line) for line in (out / "set_aside" / "part-00000.jsonl").open()]
    assert (row["source"], row["line"]) == ("enrollments/part-00000.jsonl", 2)
    assert row["reason"] == "patient: a patient id must hold printable characters only, not '\\t'"


def test_an_index_of_the_format_before_is_replaced_and_removed(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_local(str(dataset), str(out), AS_OF, workers=1)
    for index in (out / "_index").glob("*.idx"):  # (as a run before the upgrade left it)
        index.with_suffix(".json").write_text('{"format": 6}', encoding="utf-8")
        index.unlink()
    again = merge(run_local(str(dataset), str(out), AS_OF, workers=1))
    assert again["skipped"] == 0  # (each partition computed afresh once)
    assert sorted(p.suffix for p in (out / "_index").iterdir()) == [".idx"] * len(
        partitions(str(dataset))
    )


def _one_patient(data: Path, enrollment: str, records: list[str]) -> None:
    _seed_program_dataset(data)
    (data / "enrollments" / "part-00000.jsonl").write_bytes(enrollment.encode() + b"\n")
    (data / "records" / "part-00000.jsonl").write_text("".join(r + "\n" for r in records))


ENROLLED = json.dumps({"patient": "p1", "program": "low-back-pain", "start": START.isoformat()})


def _spelled_flare(key: str, day: str) -> str:
    return json.dumps({key: "p1", "kind": "pain", "date": day, "pain": 9})


@pytest.mark.parametrize("key", ["Patient", "patient ", "PATIENT"])
def test_a_record_whose_patient_key_is_spelled_otherwise_is_theirs(
    key: str, tmp_path: Path
) -> None:
    """As the reader reads keys (case and spaces do not matter): the flare pauses p1."""
    data, out = tmp_path / "data", tmp_path / "out"
    day = (START + dt.timedelta(days=2)).isoformat()
    _one_patient(data, ENROLLED, [_spelled_flare(key, day)])
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    alerts = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    assert [(a["patient"], a["rule"]) for a in alerts] == [("p1", "pain-flare")]
    assert (out / "set_aside" / "part-00000.jsonl").read_text() == ""


def test_an_enrollment_spelled_otherwise_is_set_aside_with_an_urgent_alert(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    day = (START + dt.timedelta(days=2)).isoformat()
    spelled = json.dumps({"Patient": "p1", "Program": "low-back-pain", "Start": START.isoformat()})
    _one_patient(data, spelled, [_spelled_flare("patient", day)])
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    [alert] = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    assert alert["patient"] == "p1" and alert["urgent"] and "pain up to 9/10" in alert["message"]


LOOSE_HINT = (
    " (did you mean 'p1'? its pain scores and symptom flags count for the safety rules of 'p1')"
)


@pytest.mark.parametrize("engine", ["patients", "columns"])
@pytest.mark.parametrize(
    ("written", "hint"), [("P1", LOOSE_HINT), (" p1 ", LOOSE_HINT), ("p2", "")]
)
def test_records_of_an_id_with_no_enrollment_are_set_aside_with_an_urgent_alert(
    written: str, hint: str, engine: str, tmp_path: Path
) -> None:
    """A pain of 9 under an id spelled otherwise, or of a patient enrolled elsewhere, is not
    lost: each of its lines is set aside with why, and an urgent alert names the id. When
    case or spaces alone tell it from an enrolled id, the pain counts for that patient's
    safety rules too (p1 is paused); no other id is guessed at."""
    data, out = tmp_path / "data", tmp_path / "out"
    day = (START + dt.timedelta(days=2)).isoformat()
    mine = json.dumps({"patient": "p1", "kind": "pain", "date": day, "pain": 2})
    stray = json.dumps({"patient": written, "kind": "pain", "date": day, "pain": 9})
    _one_patient(data, ENROLLED, [mine, stray])
    summary = merge(run_local(str(data), str(out), START + dt.timedelta(days=7), 1, engine=engine))
    loose = bool(hint)
    assert summary["patients"] == 1 and summary["alerts"] == 1 + loose
    alerts = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    found = [(a["patient"], a["rule"], a["urgent"]) for a in alerts]
    assert found == [(written, "enrollment", True), *[("p1", "pain-flare", False)] * loose]
    missing = f"no enrollment of {written!r} in this partition{hint}: a patient's records"
    assert alerts[0]["message"].startswith(f"not computed: {missing}")
    assert "pain up to 9/10" in alerts[0]["message"]
    aside = [json.loads(line) for line in (out / "set_aside" / "part-00000.jsonl").open()]
    assert [(a.get("line"), a.get("record")) for a in aside] == [(2, stray), (None, None)]
    assert aside[0]["reason"].startswith(f"not used: {missing}")
    [row] = [json.loads(line) for line in (out / "prescriptions" / "part-00000.jsonl").open()]
    assert (row["patient"], row["week"]) == ("p1", 2)
    assert row["status"] == ("paused" if loose else "active")


def test_with_an_id_spelled_otherwise_new_lines_of_either_give_what_a_clean_run_gives(
    tmp_path: Path,
) -> None:
    """The patient's output depends on the other id's lines: an appended line of either
    computes the partition as a clean run does."""
    data, out, clean = tmp_path / "data", tmp_path / "out", tmp_path / "clean"
    day = (START + dt.timedelta(days=2)).isoformat()
    mine = json.dumps({"patient": "p1", "kind": "pain", "date": day, "pain": 2})
    _one_patient(data, ENROLLED, [mine, json.dumps({"patient": "P1", "date": day, "pain": 3})])
    as_of = START + dt.timedelta(days=7)
    for patient in ("p1", "P1", "p1"):
        run_local(str(data), str(out), as_of, workers=1)
        flare = {
            "patient": patient,
            "kind": "pain",
            "date": day,
            "pain": 9 if patient == "P1" else 1,
        }
        _append(data / "records" / "part-00000.jsonl", flare)
        run_local(str(data), str(out), as_of, workers=1)
        shutil.rmtree(clean, ignore_errors=True)
        run_local(str(data), str(clean), as_of, workers=1)
        assert outputs(out) == outputs(clean)
    [row] = [json.loads(line) for line in (out / "prescriptions" / "part-00000.jsonl").open()]
    assert row["status"] == "paused"  # (P1's pain of 9)


def test_enrollments_that_change_whom_an_id_may_mean_give_what_a_clean_run_gives(
    tmp_path: Path,
) -> None:
    """P1's pain of 9 arrives before anyone it may mean is enrolled; then p1 is enrolled (the
    pain counts for p1); then P1 itself (it is P1's own). Each incremental run is a clean
    run's, byte for byte."""
    data, out, clean = tmp_path / "data", tmp_path / "out", tmp_path / "clean"
    day = (START + dt.timedelta(days=2)).isoformat()
    p2 = ENROLLED.replace('"p1"', '"p2"')
    _one_patient(data, p2, [json.dumps({"patient": "P1", "kind": "pain", "date": day, "pain": 9})])
    as_of = START + dt.timedelta(days=7)
    run_local(str(data), str(out), as_of, workers=1)
    status = []
    for patient in ("p1", "P1"):
        _append(data / "enrollments" / "part-00000.jsonl", ENROLLED.replace('"p1"', f'"{patient}"'))
        run_local(str(data), str(out), as_of, workers=1)
        shutil.rmtree(clean, ignore_errors=True)
        run_local(str(data), str(clean), as_of, workers=1)
        assert outputs(out) == outputs(clean)
        rows = (out / "prescriptions" / "part-00000.jsonl").read_text().splitlines()
        status.append({r["patient"]: r["status"] for r in map(json.loads, rows)})
    assert status == [
        {"p1": "paused", "p2": "active"},
        {"P1": "paused", "p1": "active", "p2": "active"},
    ]


@pytest.mark.parametrize("engine", ["patients", "columns"])
def test_a_record_whose_patient_id_is_a_number_is_set_aside_and_its_pain_is_theirs(
    engine: str, tmp_path: Path
) -> None:
    """An export that wrote the id 1001 as a number: the line is set aside (ids are text) and
    its pain of 9 pauses patient 1001, where it was "a record without 'patient'"."""
    data, out = tmp_path / "data", tmp_path / "out"
    day = (START + dt.timedelta(days=2)).isoformat()
    flare = json.dumps({"patient": 1001, "kind": "pain", "date": day, "pain": 9})
    _one_patient(data, ENROLLED.replace('"p1"', '"1001"'), [flare])
    run_local(str(data), str(out), START + dt.timedelta(days=7), 1, engine=engine)
    [aside] = [json.loads(line) for line in (out / "set_aside" / "part-00000.jsonl").open()]
    assert (aside["patient"], aside["line"]) == ("1001", 1)
    assert 'write the id as text, in quotes: "1001"' in aside["reason"]
    assert "kept for the safety rules" in aside["reason"]
    [row] = [json.loads(line) for line in (out / "prescriptions" / "part-00000.jsonl").open()]
    assert (row["patient"], row["status"]) == ("1001", "paused")


def test_records_of_an_id_alike_to_two_enrolled_ones_say_so_and_count_for_neither(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    day = (START + dt.timedelta(days=2)).isoformat()
    flare = json.dumps({"patient": "p1 ", "kind": "pain", "date": day, "pain": 9})
    _one_patient(data, ENROLLED, [flare])
    _append(data / "enrollments" / "part-00000.jsonl", ENROLLED.replace('"p1"', '"P1"'))
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    [aside] = [
        json.loads(line)
        for line in (out / "set_aside" / "part-00000.jsonl").open()
        if '"line"' in line
    ]
    several = "(it may mean 'P1' or 'p1': which one cannot be told, so its pains count for none)"
    assert aside["reason"] == f"not used: no enrollment of 'p1 ' in this partition {several}" + (
        ": a patient's records must be in the partition of their enrollment"
        " (progressor.dataset.partition_of)"
    )
    rows = [json.loads(line) for line in (out / "prescriptions" / "part-00000.jsonl").open()]
    assert {r["patient"]: r["status"] for r in rows} == {"P1": "active", "p1": "active"}
    alerts = [json.loads(line) for line in (out / "alerts" / "part-00000.jsonl").open()]
    assert [(a["patient"], a["urgent"]) for a in alerts] == [("p1 ", True)]


def test_an_enrollments_file_starting_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _one_patient(data, "\ufeff" + ENROLLED, [])
    run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)
    [row] = [json.loads(line) for line in (out / "prescriptions" / "part-00000.jsonl").open()]
    assert row["patient"] == "p1" and row["week"] == 2
    assert (out / "set_aside" / "part-00000.jsonl").read_text() == ""


def test_a_damaged_done_marker_makes_its_partition_compute_afresh(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_local(str(dataset), str(out), AS_OF, workers=1)
    clean = {t: (out / t / "part-00000.jsonl").read_bytes() for t in TABLES}
    marker = out / "_done" / "part-00000.json"
    marker.write_text("")  # (as a full disk or an interrupted copy leaves it)
    [summary] = run_local(str(dataset), str(out), AS_OF, workers=1, parts=[0])
    assert not summary.skipped and json.loads(marker.read_text())["part"] == 0
    assert {t: (out / t / "part-00000.jsonl").read_bytes() for t in TABLES} == clean


def test_two_program_files_of_one_id_are_refused(tmp_path: Path) -> None:
    """Which version a patient is on is not left to the files' names."""
    data, out = tmp_path / "data", tmp_path / "out"
    _one_patient(data, ENROLLED, [])
    text = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
    newer = text.replace('version = "1.0.0"', 'version = "1.1.0"', 1)
    (data / "programs" / "low-back-pain-1.1.toml").write_text(newer, encoding="utf-8")
    with pytest.raises(progressor.ProgressorError, match=r"both hold program 'low-back-pain'"):
        run_local(str(data), str(out), START + dt.timedelta(days=7), workers=1)


CLINIC_MODULE = """
import progressor


class Memo(progressor.Exporter):
    name = "memo"

    def export(self, program, result):
        return "VERSION"


@progressor.hookimpl
def progressor_register_exporters(register):
    register(Memo())
"""


def test_a_clinic_plugin_edited_in_place_computes_everyone_afresh(
    dataset: Path, tmp_path: Path
) -> None:
    """A --plugin module changed without a new version: its kept results are stale."""
    from tests.test_cli import run

    module = tmp_path / "clinic_memo_edit.py"
    module.write_text(CLINIC_MODULE.replace("VERSION", "one"), encoding="utf-8")
    env = {"PYTHONPATH": str(tmp_path), "PROGRESSOR_PLUGINS": ""}
    command = ("recompute", "--dataset", str(dataset), "--out", str(tmp_path / "out"))
    args = (*command, "--week", AS_OF.isoformat(), "--plugin", "clinic_memo_edit")
    first = run(*args, env=env)
    assert first.returncode in (0, 3), first.stderr
    again = run(*args, env=env)
    assert "(6 already done)" in again.stdout  # (unchanged: nothing computed again)
    module.write_text(CLINIC_MODULE.replace("VERSION", "two"), encoding="utf-8")
    edited = run(*args, env=env)
    assert "(0 already done)" in edited.stdout, edited.stdout


def test_a_record_after_the_runs_day_is_set_aside_naming_that_day(tmp_path: Path) -> None:
    """A run for an earlier week: the reason names the day the run reads records as of."""
    data, out = tmp_path / "data", tmp_path / "out"
    as_of, later = START + dt.timedelta(days=7), START + dt.timedelta(days=12)
    _one_patient(data, ENROLLED, [_spelled_flare("patient", later.isoformat())])
    run_local(str(data), str(out), as_of, workers=1)
    [row] = [json.loads(line) for line in (out / "set_aside" / "part-00000.jsonl").open()]
    assert f"dated {later}, after the day it was read ({as_of})" in row["reason"]
    assert "a run for an earlier week?" in row["reason"]
