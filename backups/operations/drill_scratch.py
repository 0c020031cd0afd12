"""Where a restore drill puts what it restores, and its removal: the drill's index prefix in
Elasticsearch (the live cluster, or the scratch cluster of A4C_DRILL_ES_URLS with the drill's
read-only registration of the repository there) and its scratch dir for files, all named by
the drill's id, and the one rule that a drill's index names are never Alien4Cloud's. Used by
the drill (operations/drill.py) at its end, whatever the end, and by the recovery for a drill
whose worker died."""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path

from django.conf import settings

from backups.errors import BackupError, ConfigError, StorageError

# Elasticsearch's rule for index names, for the part the prefix adds
_INDEX_CHARS = re.compile(r"^[a-z0-9._+-]*$")


def index_prefix(job_id: int) -> str:
    """The names a drill's indices take: "<A4C_DRILL_INDEX_PREFIX><drill id>-<index>"."""
    return f"{settings.A4C_DRILL_INDEX_PREFIX}{job_id}-"


def scratch_repository(job_id: int) -> str:
    """The name a drill registers the repository under, read-only, on the scratch cluster."""
    return f"{index_prefix(job_id)}repository"


def drill_root() -> Path:
    """A4C_DRILL_DIR, or "<A4C_BACKUP_DIR>-drills" beside the storage (same filesystem)."""
    if settings.A4C_DRILL_DIR:
        return Path(settings.A4C_DRILL_DIR)
    storage = Path(settings.A4C_BACKUP_DIR)
    return storage.parent / f"{storage.name}-drills"


def scratch_dir(job_id: int) -> Path:
    return drill_root() / f"drill-{job_id}"


def prefix_problem() -> str | None:
    """Why A4C_DRILL_INDEX_PREFIX cannot be used, or None: its names must be valid, and never
    taken for Alien4Cloud's indices (a backup would take them, a restore replace them). The
    tool never counts a name starting with a dot as Alien4Cloud's (elastic.Cluster.indices);
    any other name must match no A4C_INDEX_INCLUDE pattern outside A4C_INDEX_EXCLUDE."""
    prefix = settings.A4C_DRILL_INDEX_PREFIX
    if not prefix or not _INDEX_CHARS.match(prefix) or prefix[0] in "-_+":
        return (
            f"A4C_DRILL_INDEX_PREFIX is {prefix!r}: give lowercase letters, digits, '.', '-', "
            "'_' or '+', not starting with '-', '_' or '+' (the default is .a4c-drill-)."
        )
    if prefix.startswith("."):
        return None
    sample = f"{prefix}1-x"
    included = [p for p in settings.A4C_INDEX_INCLUDE if fnmatch.fnmatchcase(sample, p)]
    excluded = any(fnmatch.fnmatchcase(sample, p) for p in settings.A4C_INDEX_EXCLUDE)
    if included and not excluded:
        return (
            f"A4C_DRILL_INDEX_PREFIX {prefix!r} makes index names that A4C_INDEX_INCLUDE "
            f"({', '.join(included)}) takes for Alien4Cloud's: a drill's indices would go into "
            "backups and be replaced by restores. Start the prefix with a dot (the default, "
            ".a4c-drill-), or narrow A4C_INDEX_INCLUDE."
        )
    return None


def check_prefix() -> None:
    problem = prefix_problem()
    if problem:
        raise ConfigError(problem)


def remove_indices(job_id: int) -> list[str]:
    """Deletes the indices a drill restored, in the live cluster and on the scratch cluster
    (with its read-only registration there); their names."""
    # here, not at the top: every command's settings check reads prefix_problem() above
    from backups.elastic import client as elastic
    from backups.elastic import drills as elastic_drills

    names = elastic_drills.delete_named(elastic.cluster(), index_prefix(job_id))
    scratch = elastic.scratch_cluster()
    if scratch is not None:
        names += elastic_drills.delete_named(scratch, index_prefix(job_id))
        elastic_drills.unregister(scratch, scratch_repository(job_id))
    return names


def remove_scratch(job_id: int) -> bool:
    """Removes a drill's scratch dir; whether there was one."""
    path = scratch_dir(job_id)
    if not path.exists():
        return False
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise StorageError(
            f"The drill's scratch dir {path} could not be removed ({exc.strerror}): remove it "
            "by hand; it holds a copy of the backup's files."
        ) from exc
    return True


def remove_all(job_id: int) -> list[str]:
    """Removes what a drill restored, both parts, the second even when the first fails; what
    could not be removed, said (empty: all gone)."""
    left = []
    try:
        remove_indices(job_id)
    except BackupError as exc:
        left.append(
            f"its indices ({index_prefix(job_id)}*) could not be deleted: {exc}; delete them "
            "by hand"
        )
    try:
        remove_scratch(job_id)
    except BackupError as exc:
        left.append(str(exc))
    return left
