"""What a person asked for, as one frozen value: a backup (BackupRequest) or a restore
(RestoreRequest).

Built once at the door (a form's clean, a command's argument parsing, a policy, a rollback) and
passed down whole to the plan, the request and the run's columns, so no layer re-reads or
re-spells the options. The values only tidy what was typed (stripped names, tuples); the rules
about them are the engine's (request_backup, plan.check_restore_request).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from backups.models import Backup, RestoreRun


def _names(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in values or () if v and v.strip())


@dataclass(frozen=True)
class BackupRequest:
    """A backup to take. An empty ``name`` asks for a dated one; empty ``indices`` (patterns)
    means every A4C index; no ``trigger`` means the actor's source decides it."""

    name: str = ""
    description: str = ""
    include_elasticsearch: bool = True
    include_files: bool = True
    indices: tuple[str, ...] = ()
    trigger: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", (self.name or "").strip())
        object.__setattr__(self, "indices", _names(self.indices))

    def trigger_for(self, source: str) -> str:
        """The trigger the row records: the one given, else the door the actor came through."""
        return self.trigger or {
            "web": Backup.Trigger.WEB,
            "cli": Backup.Trigger.CLI,
            "schedule": Backup.Trigger.SCHEDULE,
        }.get(source, Backup.Trigger.WEB)


@dataclass(frozen=True)
class RestoreRequest:
    """A restore of one backup: what it covers, how the files land, and what the person said.

    ``other_cluster`` is the person's word that restoring into another Elasticsearch cluster is
    meant; ``foreign`` is their word that restoring a foreign set (one no key trusted here
    vouches for: operations/signing.py) is meant; ``keep_owners`` that the files of a set from
    elsewhere keep the owners and modes its manifest records (by default they get the data
    dir's: plan.file_owners); ``remove_indices`` replaces the rule "a full restore removes the
    A4C indices the backup does not hold" by an explicit list (a rollback removes what its
    restore created).
    """

    backup_id: int | str
    scope: str = RestoreRun.Scope.ALL
    indices: tuple[str, ...] = ()
    file_mode: str = RestoreRun.FileMode.MIRROR
    rename_pattern: str = ""
    rename_replacement: str = ""
    safety_backup: bool = True
    other_cluster: bool = False
    foreign: bool = False
    keep_owners: bool = False
    remove_indices: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", _names(self.indices))
        if self.remove_indices is not None:
            object.__setattr__(self, "remove_indices", tuple(self.remove_indices))

    @property
    def rename(self) -> tuple[str, str] | None:
        return (self.rename_pattern, self.rename_replacement) if self.rename_pattern else None

    @classmethod
    def of_run(cls, run: RestoreRun, remove_indices: Iterable[str] | None = None) -> RestoreRequest:
        """The request a run was created from, read back from its columns."""
        return cls(
            backup_id=run.backup_id,
            scope=run.scope,
            indices=tuple(run.chosen_indices or ()),
            file_mode=run.file_mode,
            rename_pattern=run.rename_pattern,
            rename_replacement=run.rename_replacement,
            safety_backup=run.take_safety_backup,
            remove_indices=None if remove_indices is None else tuple(remove_indices),
        )
