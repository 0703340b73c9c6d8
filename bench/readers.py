"""What reading a partition's records costs, by reader: where a faster batch would start.

Run as `.venv/bin/python bench/readers.py [--patients 5000]`. It generates one partition of
the synthetic cohort (the seed program, one week of outcomes per patient, as bench/batch.py
does) and times, best of three, in one process, microseconds per patient for:

- the standard library's json.loads per line (what bench/batch.py's I/O-only floor does);
- progressor's own reader (`read_log`: each line validated into a model, bad lines set aside);
- the whole weekly step per patient (`replay` over those models), for scale;
- when installed, readers a column-wise engine could use: orjson per line; polars reading
  the whole file into columns and counting each patient's sessions per exercise; polars
  decoding every line into the column engine's fields as the column engine does
  (`str.json_decode`, PlainColumns' schema: the `columns` extra); and duckdb reading the
  file into the same columns (`read_json`; `pip install orjson duckdb`, neither a
  dependency of progressor).

Times are CPU seconds of the process (its threads too: polars and duckdb may use several),
best of three. Figures go to standard output; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import progressor
from progressor.core.models import Enrollment
from progressor.demo import shipped_text
from progressor.reading import read_log
from progressor.synth import DEFAULT_START, synthesize_dataset

AS_OF = DEFAULT_START + dt.timedelta(days=7)


def best_of(run: Callable[[], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=5_000)
    args = parser.parse_args()
    text = shipped_text("low-back-pain")
    compiled = progressor.Engine().compile(progressor.parse_program(text))
    with tempfile.TemporaryDirectory(prefix="progressor-readers-") as root:
        synthesize_dataset(root, [(compiled, text)], args.patients, 1, 11, 1)
        records = Path(root) / "records" / "part-00000.jsonl"
        data = records.read_bytes()
        lines = data.decode("utf-8").splitlines()
        enrollments = [
            Enrollment.model_validate_json(line)
            for line in (Path(root) / "enrollments" / "part-00000.jsonl").read_text().splitlines()
        ]
    by_patient: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        by_patient[json.loads(line)["patient"]].append(line)
    logs = {patient: read_log(found, "", "jsonl") for patient, found in by_patient.items()}

    def replay_all() -> None:
        for enrollment in enrollments:
            log = logs.get(enrollment.patient)
            compiled.replay(enrollment, log.records if log else (), until=AS_OF)

    timings: list[tuple[str, float | None]] = [
        (
            "json.loads per line (the floor's reader)",
            best_of(lambda: [json.loads(x) for x in lines]),
        ),
        (
            "read_log per patient (progressor's reader)",
            best_of(lambda: [read_log(found, "", "jsonl") for found in by_patient.values()]),
        ),
        ("the weekly step per patient (replay)", best_of(replay_all)),
    ]
    try:
        orjson: Any = importlib.import_module("orjson")
        timings.append(("orjson.loads per line", best_of(lambda: [orjson.loads(x) for x in lines])))
    except ImportError:
        timings.append(("orjson.loads per line", None))
    try:
        polars: Any = importlib.import_module("polars")

        def columns() -> object:
            frame = polars.read_ndjson(data)
            done = polars.col("reps").list.min() >= 5
            return frame.group_by(["patient", "exercise"]).agg(polars.len(), done.sum())

        timings.append(("polars: the file into columns, sessions counted", best_of(columns)))
        from progressor.columns.reading import PlainColumns

        fields = polars.Struct(PlainColumns().schema)
        series = polars.Series(lines, dtype=polars.String)
        decoded = best_of(lambda: series.str.json_decode(fields))
        timings.append(("polars: each line decoded, the column engine's way", decoded))
    except ImportError:
        timings.append(("polars: the file into columns, sessions counted", None))
        timings.append(("polars: each line decoded, the column engine's way", None))
    timings.append(("duckdb: the file into the same columns (read_json)", _duckdb(data)))
    print(f"{args.patients:,} patients, {len(lines):,} record lines ({len(data) / 1e6:.1f} MB)")
    for name, seconds in timings:
        per = (
            "not installed"
            if seconds is None
            else f"{seconds / args.patients * 1e6:8.1f} us a patient"
        )
        print(f"  {name:<50} {per}")


def _duckdb(data: bytes) -> float | None:
    """duckdb's JSON reader over the records file (`data`, written to a file of its own),
    into the column engine's fields and types; None where duckdb is not installed."""
    try:
        duckdb: Any = importlib.import_module("duckdb")
    except ImportError:
        return None
    from progressor.columns.reading import PlainColumns

    names = {"Float64": "DOUBLE", "Int64": "BIGINT", "String": "VARCHAR", "Boolean": "BOOLEAN"}

    def sql_type(dtype: Any) -> str:
        inner = getattr(dtype, "inner", None)
        return f"{sql_type(inner)}[]" if inner is not None else names[str(dtype)]

    columns = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in PlainColumns().schema.items())
    connection = duckdb.connect()
    with tempfile.TemporaryDirectory(prefix="progressor-readers-") as root:
        records = Path(root) / "records.jsonl"
        records.write_bytes(data)
        query = (
            f"SELECT * FROM read_json('{records}', format='newline_delimited',"
            f" columns={{{columns}}})"
        )
        return best_of(lambda: connection.sql(query).to_arrow_table())


if __name__ == "__main__":
    main()
