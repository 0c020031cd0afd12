"""What one doctor check answers, shared by the checks of every room."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Every network call of a check times out within this many seconds: the dashboard asks them.
NETWORK_TIMEOUT = 2.0


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    fix: str = ""
    level: str = "ok"  # "ok", "warning" or "error"

    def as_dict(self) -> dict:
        return asdict(self)
