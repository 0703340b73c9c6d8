"""The clinic's store: one SQLite file (`Store`), and its weekly batch (`recompute`).

`database` holds the Store (enrollments, imports, clinician actions, results), `schema` its
migrations, `results` what recompute reads and writes, `values` the values it hands out,
`batch` the recompute and `processes` its run lock and workers, `clinic` the clinic's
workflows (listing, discharge, voids, the quarantine's state).
"""

from progressor.errors import StoreError
from progressor.store.batch import PatientFailure, Summary, recompute
from progressor.store.clinic import PatientEntry, QuarantineEntry, StoredRecord
from progressor.store.database import Store
from progressor.store.processes import RecomputeRunning
from progressor.store.queue import ReviewPage
from progressor.store.values import ImportReport, ReviewItem, StoreStatus

__all__ = [
    "ImportReport",
    "PatientEntry",
    "PatientFailure",
    "QuarantineEntry",
    "RecomputeRunning",
    "ReviewItem",
    "ReviewPage",
    "Store",
    "StoreError",
    "StoreStatus",
    "StoredRecord",
    "Summary",
    "recompute",
]
