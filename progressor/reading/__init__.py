"""Reading: programs (TOML) and records (JSONL, CSV) into models, for every road.

`programs` refuses a bad program with every problem located; `records` is the one record
reader (the command line, the store's import and the dataset all read through it): bad lines
are set aside with their file, line and reason, and the pain that can be made out of them
still reaches the safety rules.
"""

from progressor.core.timeline import KEPT_AS_OF_TODAY
from progressor.reading.programs import (
    MAX_PROGRAM_BYTES,
    key_lines,
    load_program,
    parse_program,
)
from progressor.reading.records import (
    FUTURE_GRACE,
    KEPT_FROM_ASIDE,
    MAX_DEPTH,
    MAX_LINE,
    SALVAGED,
    Log,
    Row,
    future_reason,
    kept_as_of,
    load_log,
    log_format,
    parse_record,
    read_log,
    record_reason,
    rows,
    salvage,
)

__all__ = [
    "FUTURE_GRACE",
    "KEPT_AS_OF_TODAY",
    "KEPT_FROM_ASIDE",
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_PROGRAM_BYTES",
    "SALVAGED",
    "Log",
    "Row",
    "future_reason",
    "kept_as_of",
    "key_lines",
    "load_log",
    "load_program",
    "log_format",
    "parse_program",
    "parse_record",
    "read_log",
    "record_reason",
    "rows",
    "salvage",
]
