"""Where a restore drill restores a set's indices: the live cluster, under the drill's names,
or the scratch cluster of A4C_DRILL_ES_URLS, where the drill registers the repository read-only
under its own name (removed at its end with its indices, drill_scratch.remove_all), so that
nothing is restored, nor registered writable, in the cluster Alien4Cloud reads.

Elasticsearch is reached through backups/elastic only; operations/drill.py does the restore
and the check the same way on either cluster.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.conf import settings

from backups.elastic import client as elastic
from backups.elastic import drills as elastic_drills
from backups.elastic import repository as repository_files
from backups.elastic.values import SnapshotInfo
from backups.errors import BackupError, ElasticError
from backups.models import Backup, Job
from backups.operations import drill_scratch, records


@dataclasses.dataclass(frozen=True)
class DrillTarget:
    """Where a drill restores the set's indices, and the repository's registration there."""

    cluster: elastic.Cluster
    repository: str
    location: str  # the repository's directory, for its snapshot's metadata ("": ask)
    scratch: bool  # a scratch cluster (A4C_DRILL_ES_URLS), not the live one


def drill_target(job: Job, backup: Backup) -> DrillTarget:
    """The live cluster (the repository registered as any backup or restore would), or the
    scratch cluster of A4C_DRILL_ES_URLS with the repository registered there read-only under
    the drill's own name, removed at the drill's end (drill_scratch.remove_all)."""
    scratch = elastic.scratch_cluster()
    if scratch is None:
        live = elastic.cluster()
        name = records.ensure_repository_for(backup)
        return DrillTarget(live, name, live.repository_location(name) or "", False)
    _, location = records.repository_place(backup)
    name = drill_scratch.scratch_repository(job.pk)
    elastic_drills.register_readonly(scratch, name, location)
    return DrillTarget(scratch, name, location, True)


def scratch_snapshot(target: DrillTarget, backup: Backup) -> SnapshotInfo | None:
    """The set's snapshot as the scratch cluster reads it; an error naming A4C_DRILL_ES_URLS
    when the scratch cluster misses a snapshot the repository holds (it reads another
    directory), None when the repository itself lacks it (the set's own damage)."""
    where = backup.snapshot_location
    try:
        snap = target.cluster.snapshot(target.repository, where.snapshot)
    except ElasticError as exc:
        raise ElasticError(
            f"The scratch cluster of A4C_DRILL_ES_URLS ({', '.join(settings.A4C_DRILL_ES_URLS)}) "
            f"cannot read the snapshot repository at {target.location}: {exc.message} Give its "
            "nodes the live cluster's shared repository directory under path.repo, or empty "
            "A4C_DRILL_ES_URLS to drill in the live cluster.",
            detail=exc.detail,
        ) from exc
    if snap is not None:
        return snap
    try:
        held = repository_files.has_snapshot(Path(target.location), where.snapshot)
    except BackupError:
        held = None
    if held is None:  # this machine cannot read the directory: ask the live cluster
        live = elastic.cluster()
        held = bool(
            live.repository_location(where.repository)
            and live.snapshot(where.repository, where.snapshot)
        )
    if held:
        raise ElasticError(
            f"The scratch cluster of A4C_DRILL_ES_URLS ({', '.join(settings.A4C_DRILL_ES_URLS)}) "
            f"does not see the snapshot {where.snapshot} that the repository at "
            f"{target.location} holds: its path.repo names a directory of that path that is not "
            "the live cluster's. Give its nodes the same shared directory (NFS...), or empty "
            "A4C_DRILL_ES_URLS to drill in the live cluster."
        )
    return None


def too_old(cannot: str, where) -> None:
    """A scratch cluster whose version cannot read the set's snapshot: an error naming the
    setting, not a verdict on the set (the live cluster may well restore it)."""
    raise ElasticError(
        f"The scratch cluster of A4C_DRILL_ES_URLS ({', '.join(settings.A4C_DRILL_ES_URLS)}) "
        f"cannot restore {where}: {cannot}. Point A4C_DRILL_ES_URLS at a cluster whose version "
        "reads it, or empty it to drill in the live cluster."
    )
