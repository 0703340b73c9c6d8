"""A clinic plugin whose safety rule always raises: the fail-safe scenario's plugin.

It stands for a rule that reads a wearable's step counts from a service that is down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel

import progressor


class WearableSteps(progressor.SafetyRule):
    name = "wearable-steps"
    description = "holds exercises on days of unusually high step counts (service is down)"

    def evaluate(
        self, week: progressor.WeekView, params: BaseModel
    ) -> Iterable[progressor.Finding]:
        raise ConnectionError("step-count service unreachable")


@progressor.hookimpl
def progressor_register_safety_rules(register: Callable[[progressor.SafetyRule], None]) -> None:
    register(WearableSteps())
