"""Sending clinician alerts through the registered channels: retried, never lost silently.

The weekly step only returns alerts; sending them is a separate, impure act, done here.
A channel that keeps failing after its retries is reported in the returned deliveries, and
the command line then prints the undelivered alert in full and exits non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from progressor.core.components import AlertChannel
from progressor.core.models import Alert
from progressor.core.plugins import Registry
from progressor.errors import ProgressorError, did_you_mean


@dataclass(frozen=True)
class Delivery:
    """What became of one alert on one channel."""

    alert: Alert
    channel: str
    target: str
    attempts: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


def parse_specs(
    registry: Registry[AlertChannel], specs: Iterable[str]
) -> list[tuple[AlertChannel, str]]:
    """``NAME[:TARGET]`` specs to channels; an unknown name is an error with a suggestion."""
    channels = []
    for spec in specs:
        name, _, target = spec.partition(":")
        if name not in registry:
            hint = did_you_mean(name, registry)
            known = ", ".join(sorted(registry)) or "none"
            raise ProgressorError(
                f"unknown alert channel {name!r}"
                + (f" ({hint})" if hint else "")
                + f"; channels: {known}"
            )
        channel = registry[name].component
        try:
            problems = list(channel.check(target))
        except Exception as exc:  # a plugin's check that fails names the plugin
            problems = [
                f"its check failed ({type(exc).__name__}: {exc}); plugin {registry[name].plugin!r}"
            ]
        if problems:
            raise ProgressorError(f"alert channel {spec!r}: {'; '.join(problems)}")
        channels.append((channel, target))
    return channels


def dispatch(
    channels: Sequence[tuple[AlertChannel, str]],
    alerts: Iterable[Alert],
    *,
    attempts: int = 3,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send every alert on every channel, retrying each failure `attempts` times in all."""
    deliveries = []
    for alert in alerts:
        for channel, target in channels:
            deliveries.append(_send(channel, target, alert, attempts, backoff_s, sleep))
    return deliveries


def _send(
    channel: AlertChannel,
    target: str,
    alert: Alert,
    attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None],
) -> Delivery:
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            channel.send(alert, target)
        except Exception as exc:  # any failure of a channel is retried, then reported
            error = f"{type(exc).__name__}: {exc}"
            if attempt < attempts:
                sleep(backoff_s * 2 ** (attempt - 1))
        else:
            return Delivery(alert, channel.name, target, attempt)
    return Delivery(alert, channel.name, target, attempts, error)
