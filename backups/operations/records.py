"""A backup set's record in the backup storage, and the snapshot repository it needs.

The storage must describe itself (backups/storage/catalog.py): this module turns a Backup row
into its BackupRecord and back, carries the audit history and the policies with it, and
registers the snapshot repository a restore or a verification reads when the cluster has lost
it (a new cluster, a wiped one). ``sync`` (operations/sync.py) and ``import``
(operations/archives.py) read records through ``read_signed_record`` (their signature, then
their fields, checked as untrusted input by operations/record_schema.py) and build rows from
them through ``row_fields``.
"""

from __future__ import annotations

import os
import socket
import uuid

from django.conf import settings
from django.forms.models import model_to_dict

from backups import selectors
from backups.elastic import client as elastic
from backups.errors import DamagedBackup, ElasticError
from backups.formatting import printable
from backups.models import AuditEvent, Backup, Policy
from backups.operations import signing
from backups.operations.places import store
from backups.operations.record_schema import (
    SignedRecord,
    parse_history_item,
    parse_signed_record,
)
from backups.storage import BackupRecord, Catalog, HistoryEvent, IndexCount, PolicyRecord

# The policy fields a new machine needs; run times and failures are this console's own.
POLICY_FIELDS = (
    "description",
    "name_pattern",
    "schedule",
    "include_elasticsearch",
    "include_files",
    "index_patterns",
    "keep_last",
    "keep_min",
    "max_age_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "paused",
    "drill_every",
)


def catalog() -> Catalog:
    return store().records


def read_signed_record(name: str) -> SignedRecord:
    """The record ``records/NAME.json`` of the backup storage, its signature checked over its
    bytes (ForgedSignature), then its fields (RecordRefused), with what its signature says."""
    path = catalog().record_path(name)
    where = f"the record {printable(path)}"
    signed = parse_signed_record(
        catalog().read_bytes(name), where, what=f"the record of {printable(name)}"
    )
    if signed.record.name != name:
        raise DamagedBackup(
            f"{where} claims the name {printable(repr(signed.record.name))}: two sets claim one "
            "name; move the file whose name is wrong out of records/ and sync again"
        )
    return signed


def read_record(name: str) -> BackupRecord:
    """The record ``records/NAME.json``, checked as ``read_signed_record`` checks it."""
    return read_signed_record(name).record


def read_history(name: str, sha256: str | None = None):
    """The policies and audit events the record of ``name`` carries, each checked; with
    ``sha256`` (a signed record's ``history_sha256``), only from the file it names."""
    where = f"the history {printable(catalog().history_path(name))}"
    for item in catalog().history_items(name, sha256=sha256):
        yield parse_history_item(item, where)


def this_console() -> str:
    """Which console wrote a record: its host and its database."""
    return f"{socket.gethostname()}:{settings.DATABASES['default']['NAME']}"


def new_set_id() -> str:
    return uuid.uuid4().hex


def record_of(backup: Backup) -> BackupRecord:
    return BackupRecord(
        set_id=backup.set_id,
        name=backup.name,
        description=backup.description,
        created_at=backup.created_at,
        started_at=backup.started_at,
        finished_at=backup.finished_at,
        actor=backup.actor,
        source=backup.source,
        trigger=backup.trigger,
        include_elasticsearch=backup.include_elasticsearch,
        include_files=backup.include_files,
        index_patterns=list(backup.index_patterns or []),
        indices={name: IndexCount.of(i) for name, i in (backup.indices or {}).items()},
        snapshot_name=backup.snapshot_name,
        repository=backup.repository,
        repository_location=backup.repository_location,
        es_cluster_name=backup.es_cluster_name,
        es_cluster_uuid=backup.es_cluster_uuid,
        es_version=backup.es_version,
        manifest_sha256=backup.manifest_sha256,
        file_count=backup.file_count,
        file_bytes=backup.file_bytes,
        safety=backup.trigger == Backup.Trigger.SAFETY,
        pinned=backup.pinned,
        policy=backup.policy.name if backup.policy_id else "",
        warnings=list(backup.warnings or []),
        written_by=this_console(),
        imported_from=backup.imported_from,
        foreign=backup.foreign,
        signed_by=backup.signed_by,
        last_drill=drill_evidence(backup),
    )


def drill_evidence(backup: Backup) -> dict:
    """The last restore drill of a set, as its record keeps it: evidence of a restore that
    survives the console's database."""
    job = selectors.last_drill(backup)
    if job is None:
        return {}
    result = job.result or {}
    return {
        "at": job.finished_at.isoformat() if job.finished_at else None,
        "outcome": selectors.drill_outcome(job),
        "restore_seconds": result.get("restore_seconds"),
        "elasticsearch_seconds": result.get("elasticsearch_seconds"),
        "files_seconds": result.get("files_seconds"),
        "problems": list(result.get("problems") or [])[:10],
        "by": job.actor,
    }


def row_fields(record: BackupRecord, imported_from: str) -> dict:
    """A succeeded Backup row's fields for a set this console did not take."""
    return {
        "name": record.name,
        "set_id": record.set_id,
        "description": record.description,
        "status": Backup.Status.SUCCEEDED,
        "trigger": record.trigger,
        "include_elasticsearch": record.include_elasticsearch,
        "include_files": record.include_files,
        "index_patterns": record.index_patterns,
        "pinned": record.pinned,
        # A foreign set never joins a policy: its retention would count it (issue 23).
        "policy": (
            Policy.objects.filter(name=record.policy).first()
            if record.policy and not record.foreign
            else None
        ),
        "indices": {n: i.as_json() for n, i in record.indices.items()},
        "file_count": record.file_count,
        "file_bytes": record.file_bytes,
        "manifest_sha256": record.manifest_sha256,
        "snapshot_name": record.snapshot_name,
        "repository": record.repository,
        "repository_location": record.repository_location,
        "es_version": record.es_version,
        "es_cluster_name": record.es_cluster_name,
        "es_cluster_uuid": record.es_cluster_uuid,
        "warnings": record.warnings,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "actor": record.actor,
        "source": record.source,
        "phase": "done",
        "percent": 100,
        "imported_from": imported_from,
        "foreign": record.foreign,
        "signed_by": record.signed_by,
    }


def history_events():
    """This console's audit chain as records carry it, read in batches."""
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        yield HistoryEvent(
            at=event.at.isoformat(timespec="microseconds"),
            actor=event.actor,
            source=event.source,
            action=event.action,
            target=event.target,
            parameters=event.parameters,
            outcome=event.outcome,
            message=event.message,
            ip=event.ip,
            user_agent=event.user_agent,
            backup=event.backup_id,
            restore=event.restore_id,
            prev_hash=event.prev_hash,
            hash=event.hash,
            imported_from=event.imported_from,
            imported_hash=event.imported_hash,
        )


def policy_records():
    for policy in Policy.objects.order_by("name"):
        yield PolicyRecord(policy.name, model_to_dict(policy, fields=POLICY_FIELDS))


def write_record(backup: Backup) -> None:
    """Writes the succeeded set's record, with the history up to now, into the storage."""
    if not backup.set_id:
        backup.set_id = new_set_id()
        Backup.objects.filter(pk=backup.pk).update(set_id=backup.set_id)
    if not backup.repository_location and backup.snapshot_name:
        backup.repository_location = settings.A4C_ES_REPOSITORY_PATH
        Backup.objects.filter(pk=backup.pk).update(repository_location=backup.repository_location)
    if not backup.signed_by and not backup.foreign:  # this installation vouches for its own
        backup.signed_by = signing.installation_key().key_id
        Backup.objects.filter(pk=backup.pk).update(signed_by=backup.signed_by)
    catalog().write(record_of(backup), history_events(), policy_records())


def rewrite_record(backup: Backup) -> None:
    """A set's flags changed (pinned), or a drill ended: its record says so too, when it has
    one."""
    if backup.set_id and catalog().exists(backup.name):
        catalog().rewrite(record_of(backup))


def forget_record(name: str) -> None:
    catalog().delete(name)


def ensure_repository_for(backup: Backup) -> str:
    """Registers the backup's snapshot repository when the cluster does not know it.

    A cluster other than the one that took the backup only reads it (read-only), and so does
    any repository that is not this console's own (an imported archive's): two clusters
    writing one repository would corrupt it. A backup's repository and location come from its
    record, which may have been planted in the shared storage: this console's own repository
    is only ever registered at A4C_ES_REPOSITORY_PATH, and a repository the cluster knows is
    never registered again elsewhere. Returns the repository's name.
    """
    name, location = claimed_repository(backup)
    own = name == settings.A4C_ES_REPOSITORY
    claimed = backup.repository_location
    cluster = elastic.cluster()
    registered = cluster.repository_location(name)
    if registered is not None:
        if (
            not own
            and claimed
            and registered.startswith("/")
            and _normal(registered) != _normal(claimed)
        ):
            raise DamagedBackup(
                f"The record of backup {printable(backup.name)} places its snapshot in the "
                f"repository {name} at {printable(claimed)}, but Elasticsearch has {name} at "
                f"{registered}: a record cannot move a registered repository; the backup cannot "
                "be read until they agree."
            )
        return name
    if not location:
        raise ElasticError(
            f"The snapshot repository {name} is not registered in Elasticsearch and the backup "
            f"{printable(backup.name)} does not say where it is: register it, or sync again."
        )
    same_cluster = not backup.es_cluster_uuid or (
        cluster.info().cluster_uuid == backup.es_cluster_uuid
    )
    cluster.register_repository(name, location, readonly=not (own and same_cluster))
    return name


def claimed_repository(backup: Backup) -> tuple[str, str]:
    """The backup's snapshot repository and where its record places it ("" when it does not
    say): this console's own repository is only ever at A4C_ES_REPOSITORY_PATH."""
    name = backup.repository or settings.A4C_ES_REPOSITORY
    own = name == settings.A4C_ES_REPOSITORY
    claimed = backup.repository_location
    if own and claimed and _normal(claimed) != _normal(settings.A4C_ES_REPOSITORY_PATH):
        raise DamagedBackup(
            f"The record of backup {printable(backup.name)} places its snapshot in {name}, "
            f"this console's own repository, at {printable(claimed)}; that repository is at "
            f"{settings.A4C_ES_REPOSITORY_PATH} and a record cannot move it. If the snapshots "
            "really are there, set A4C_ES_REPOSITORY_PATH to it (or copy them); otherwise "
            "the record is not this console's: delete it from the backup storage's records/."
        )
    return name, settings.A4C_ES_REPOSITORY_PATH if own else claimed


def repository_place(backup: Backup) -> tuple[str, str]:
    """The backup's snapshot repository and its location, without registering anything: for
    a cluster that only reads it (a drill's scratch cluster)."""
    name, location = claimed_repository(backup)
    if not location:
        location = elastic.cluster().repository_location(name) or ""
    if not location:
        raise ElasticError(
            f"The backup {printable(backup.name)} does not say where its snapshot repository "
            f"{name} is, and Elasticsearch does not know it: sync again, or register it."
        )
    return name, location


def _normal(path: str) -> str:
    return os.path.normpath(str(path))
