"""What a running restore has changed so far: what its rollback and the recovery must undo.

Kept on the run row (``RestoreRun.state``) as this one typed value, read and written here only,
so the restore, its rollback and the recovery of a dead worker agree on what each part means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestoreState:
    changed: bool = False  # something was overwritten: a failure now needs a rollback
    existing_touched: list[str] = field(default_factory=list)  # indices replaced or removed
    created: list[str] = field(default_factory=list)  # indices that did not exist before
    old_tree: str = ""  # the previous data dir, kept beside the new one until the end
    created_data_dir: str = ""  # the data dir, made by this restore (there was none before)
    restart: str = ""  # what the operator is told about restarting Alien4Cloud afterwards

    @classmethod
    def of(cls, run) -> RestoreState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (run.state or {}).items() if k in known})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def note(run, runner, **changes) -> RestoreState:
    """Records changes to the run's state on its row at once (a crash must find them)."""
    state = dataclasses.replace(RestoreState.of(run), **changes)
    runner.update(state=state.to_json())
    return state
