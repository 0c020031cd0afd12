"""The doctor's look at restore drills: with A4C_DRILL_MAX_AGE_DAYS set, no drill passing
within that many days turns Health red, naming the last passing drill and when; with
A4C_DRILL_ES_URLS set, whether the scratch cluster answers and reads the repository."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import selectors
from backups.doctor.result import NETWORK_TIMEOUT, Check
from backups.elastic import client as elastic
from backups.elastic import drills as elastic_drills
from backups.elastic import repository as repository_files
from backups.errors import BackupError

NAME = "Restore drills"
SCRATCH = "Drill scratch cluster"


def drills_check(now=None) -> Check:
    age = selectors.drill_age(now)
    if age.too_old:
        return Check(
            NAME,
            False,
            f"no drill passed in the last {age.max_age_days:g} days. {age.sentence}",
            "Run one (`manage.py drill --latest`, or 'Run a drill' on a backup's page), or set "
            "a policy's 'Drill every'; a failed drill's page says what is wrong with the set.",
            "error",
        )
    if age.job is None:
        return Check(NAME, True, "none has passed yet; no limit is set (A4C_DRILL_MAX_AGE_DAYS)")
    when = timezone.localtime(age.job.finished_at)
    limit = f", within the {age.max_age_days:g} days allowed" if age.max_age_days else ""
    return Check(
        NAME, True, f"last passed: backup {age.job.backup.name}, {when:%Y-%m-%d %H:%M}{limit}"
    )


def scratch_cluster_check() -> Check:
    """The scratch cluster answers, and reads the repository's directory: it is registered
    there read-only for a moment, and must list the snapshots this machine sees in it."""
    scratch = elastic.scratch_cluster()
    if scratch is None:
        return Check(SCRATCH, True, "not set: drills restore into the live cluster")
    urls = ", ".join(settings.A4C_DRILL_ES_URLS)
    quick = elastic.Cluster(
        scratch.client.options(request_timeout=NETWORK_TIMEOUT, max_retries=0),
        scratch.urls_setting,
    )
    info = quick.info()
    location = settings.A4C_ES_REPOSITORY_PATH
    name = f"{settings.A4C_DRILL_INDEX_PREFIX}doctor-repository"
    try:
        elastic_drills.register_readonly(quick, name, location)
    except BackupError as exc:
        return Check(
            SCRATCH,
            False,
            exc.message,
            "A drill would fail the same way: fix the scratch cluster's path.repo, or empty "
            "A4C_DRILL_ES_URLS.",
            "error",
        )
    try:
        seen = {snap.name for snap in quick.snapshots(name)}
    finally:
        elastic_drills.unregister(quick, name)
    try:
        _, catalog = repository_files.catalog(Path(location))
        held = {snap["name"] for snap in catalog.get("snapshots", [])}
    except BackupError:
        held = None  # an empty repository, or one this machine cannot read
    if held and not held & seen:
        return Check(
            SCRATCH,
            False,
            f"the scratch cluster at {urls} lists none of the snapshots ({len(held)} here) of "
            f"the repository at {location}: its nodes read another directory of that path",
            "Give the scratch cluster's nodes the live cluster's shared repository directory "
            "(the same path.repo, on a shared filesystem), or empty A4C_DRILL_ES_URLS.",
            "error",
        )
    return Check(
        SCRATCH,
        True,
        f"{info.version} at {urls}, cluster {info.cluster_name}: reads the repository at "
        f"{location} read-only ({len(seen)} snapshot{'s' if len(seen) != 1 else ''})",
    )
