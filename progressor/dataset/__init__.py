"""Partitioned datasets: a clinic network's weekly batch, one partition a task (local cores
or Dask), incremental and byte for byte repeatable.

`run` holds the writer and the executors, `partition` one partition's computation, `files`
the file access (local paths or any fsspec URL).
"""

from progressor.dataset.files import part_name
from progressor.dataset.partition import TABLES_OUT, PartitionSummary, compute_partition
from progressor.dataset.run import (
    DatasetWriter,
    merge,
    merge_paths,
    partition_of,
    partitions,
    run_dask,
    run_local,
)

__all__ = [
    "TABLES_OUT",
    "DatasetWriter",
    "PartitionSummary",
    "compute_partition",
    "merge",
    "merge_paths",
    "part_name",
    "partition_of",
    "partitions",
    "run_dask",
    "run_local",
]
