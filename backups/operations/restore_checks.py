"""What a restore checks: that the backup is whole before anything is touched, and that the
restored data matches it afterwards."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime

from backups.alien4cloud import client as alien4cloud
from backups.elastic import client as elastic
from backups.errors import DamagedBackup
from backups.models import Backup
from backups.operations import records, running
from backups.operations.places import store
from backups.operations.plan import IndexStep


def check_backup_is_whole(
    backup: Backup,
    rows: list[IndexStep],
    files: bool,
    runner: running.ProgressWriter,
    *,
    blob_contents: bool = True,
) -> None:
    """Refuses a damaged backup before anything is changed, even the safety backup.

    The snapshot must be there and whole, with the indices to restore; the manifest whole and
    every blob it names present with the right hash. blob_contents=False checks each blob's
    size only, for a restore that builds its tree (re-hashing every blob) before it changes
    anything: reading every blob twice would double the restore's reads.
    """
    problems: list[str] = []
    wanted = [r.name for r in rows if r.action in ("replace", "create")]
    if wanted:
        where = backup.snapshot_location
        snapshot = where.snapshot
        # A new, wiped or upgraded cluster may share the path.repo without having registered
        # the repository (yet): that is no damage.
        records.ensure_repository_for(backup)
        found = elastic.cluster().snapshot(where.repository, snapshot)
        if found is None:
            problems.append(
                f"snapshot {where.snapshot} is missing from repository {where.repository}"
            )
        elif found.state != "SUCCESS":
            problems.append(f"snapshot {snapshot} is {found.state}, not SUCCESS")
        else:
            missing = sorted(set(wanted) - set(found.indices))
            if missing:
                problems.append(f"snapshot {snapshot} lacks indices {', '.join(missing)}")
    if files:

        def on_progress(p) -> None:
            runner.progress(files_done=p.files_done, files_total=p.files_total)

        report = store().verify(
            backup.name, progress=on_progress, check=runner.check, contents=blob_contents
        )
        problems.extend(report.problems)
    if problems:
        raise damaged(backup, problems)


def damaged(backup: Backup, problems: list[str]) -> DamagedBackup:
    return DamagedBackup(
        f"Backup {backup.name} is damaged, so nothing was restored: "
        + "; ".join(problems[:5])
        + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        + ". Verify it for the full list, and restore another backup."
    )


@dataclasses.dataclass(frozen=True)
class OwnCalls:
    """The maintenance calls a run made as ``username`` since ``since``: Alien4Cloud keeps an
    audit trace of each in its audittrace index, which the backup cannot hold."""

    username: str
    since: datetime


def verify_restored(
    backup: Backup,
    rows: list[IndexStep],
    rewritten: Collection[str] = (),
    own_calls: OwnCalls | None = None,
) -> list[str]:
    """The indices as the backup holds them. The files are not walked again: the swap checked
    them against the manifest (storage/in_place.py), or renamed in a whole tree whose every
    byte was hashed against it as it was written.
    ``rewritten`` names indices a running Alien4Cloud writes meanwhile (its maintenance state:
    one document more or less); with ``own_calls``, its audit index is compared without the
    traces of exactly those calls, and nothing else is let through."""
    problems = []
    if rows:
        # one listing (a refresh and a multi-search) for all, not two requests per index
        now = elastic.cluster().indices(include=[row.target for row in rows])
        approximate = any("approximate" in w for w in backup.warnings)
        for row in rows:
            found = now.get(row.target)
            if row.action == "remove":
                if found:
                    problems.append(f"index {row.target} should have been removed")
            elif found is None:
                problems.append(f"index {row.target} is missing")
            elif row.target in rewritten and abs(found.docs - (row.docs_in_backup or 0)) <= 1:
                continue
            elif (
                own_calls
                and alien4cloud.is_audit_index(row.target)
                and found.docs > (row.docs_in_backup or 0)
                and _without_own_calls(row.target, own_calls) == row.docs_in_backup
            ):
                continue
            elif found.docs != row.docs_in_backup and not approximate:
                problems.append(
                    f"index {row.target} holds {found.docs} documents, "
                    f"the backup {row.docs_in_backup}"
                )
    return problems


def _without_own_calls(index: str, own_calls: OwnCalls) -> int:
    # One count that leaves out the traces of our calls, whenever Alien4Cloud saves them: a
    # trace written just after the answer of its call is left out all the same.
    query = alien4cloud.own_maintenance_calls(own_calls.username, own_calls.since)
    return elastic.cluster().count(index, {"bool": {"must_not": [query]}})
