"""What `progressor serve` was told: files, limits. Passed to worker processes as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Where `progressor serve` and `progressor token create` keep the tokens by default.
TOKENS_ENV = "PROGRESSOR_TOKENS"
DEFAULT_TOKENS = "progressor-tokens.json"
#: How the serving command hands its settings to uvicorn's worker processes.
SETTINGS_ENV = "PROGRESSOR_SERVE_SETTINGS"

MAX_BODY = 1_048_576  # 1 MiB: about 5,000 records; a patient's week is a few dozen
MAX_RECORDS = 5_000
TIMEOUT_S = 10.0
PROGRAMS = Path(__file__).resolve().parent.parent / "programs"  # the shipped programs


def default_tokens() -> Path:
    return Path(os.environ.get(TOKENS_ENV) or DEFAULT_TOKENS)


@dataclass(frozen=True)
class ServeSettings:
    """The files the service reads and the bounds of a request."""

    tokens: Path = field(default_factory=default_tokens)
    programs: Path = PROGRAMS
    store: Path | None = None
    max_body: int = MAX_BODY
    max_records: int = MAX_RECORDS
    timeout_s: float = TIMEOUT_S
    plugins: tuple[str, ...] = ()
    block: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        for name in ("tokens", "programs", "store"):
            data[name] = None if data[name] is None else str(data[name])
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        store = data.pop("store")
        return cls(
            tokens=Path(data.pop("tokens")),
            programs=Path(data.pop("programs")),
            store=None if store is None else Path(store),
            plugins=tuple(data.pop("plugins")),
            block=tuple(data.pop("block")),
            **data,
        )
