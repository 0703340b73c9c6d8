"""progressor plugin: red-flag symptoms in back pain, and two alert channels.

Registers the essential safety rule ``red-flags`` and the alert channels ``webhook`` and
``file``. Installed, it loads through the entry-point group ``progressor``; or name the
module: ``Engine(plugins=["progressor_red_flags"])``.
"""

from __future__ import annotations

from collections.abc import Callable

from progressor import AlertChannel, SafetyRule, hookimpl
from progressor_red_flags.channels import FileChannel, WebhookChannel, WebhookError, alert_json
from progressor_red_flags.rules import (
    ALIASES,
    ALWAYS_URGENT,
    SYMPTOMS,
    URGENT_FLAG,
    RedFlags,
    RedFlagsParams,
)


@hookimpl
def progressor_register_safety_rules(register: Callable[[SafetyRule], None]) -> None:
    register(RedFlags())


@hookimpl
def progressor_register_alert_channels(register: Callable[[AlertChannel], None]) -> None:
    register(WebhookChannel())
    register(FileChannel())


__all__ = [
    "ALIASES",
    "ALWAYS_URGENT",
    "SYMPTOMS",
    "URGENT_FLAG",
    "FileChannel",
    "RedFlags",
    "RedFlagsParams",
    "WebhookChannel",
    "WebhookError",
    "alert_json",
    "progressor_register_alert_channels",
    "progressor_register_safety_rules",
]
