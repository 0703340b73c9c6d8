"""schemathesis against /openapi.json of a real server: every operation, a bounded number of
generated requests each, every check of schemathesis, no failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

import progressor
from progressor.store.database import Store
from tests.conftest import PROGRAMS, START
from tests.serving import Served, serving

SEED = PROGRAMS / "low-back-pain.toml"
#: Generated requests per operation: enough to reach each status an operation documents,
#: few enough for the suite (about ten operations).
EXAMPLES = 25
ACCEPTED = schemathesis.checks.positive_data_acceptance


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("schema")
    path = directory / "clinic.db"
    program = progressor.load_program(SEED)
    with Store.init(path) as store:
        store.add_program(program, SEED.read_text(encoding="utf-8"))
        store.enroll(
            progressor.Enrollment(patient="anna", program=program.id, start=START), program
        )
    with serving(directory, store=path) as running:
        yield running


def _operations(served: Served) -> list[Any]:
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_to_its_openapi_document(
    served: Served, mode: GenerationMode
) -> None:
    failures: dict[str, str] = {}
    operations = _operations(served)
    assert len(operations) >= 9  # (health, compute, FHIR, CDS Hooks)
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,  # (a shared machine: no timing in unit tests)
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            # A schema cannot say that a program id must be one the service knows, or that a
            # week must come after its start: such a request is a located 422, not accepted.
            case.call_and_validate(headers=served.headers("service"), excluded_checks=[ACCEPTED])

        try:
            check()
        except Unsatisfiable:  # (nothing of it can be made invalid: a GET with no parameters)
            continue
        except Exception as exc:
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
