"""FHIR R4 in and out (the optional extra `progressor[fhir]`; docs/fhir.md).

`plan_definition` and `care_plan` write a program and next week's prescription as FHIR
resources; `read_bundle` reads a Bundle of Observations through the one record reader.
"""

from progressor.fhir.bundle import FhirError, Imported, read_bundle
from progressor.fhir.export import care_plan, plan_definition

__all__ = ["FhirError", "Imported", "care_plan", "plan_definition", "read_bundle"]
