"""The work itself: backup, restore, rollback, verify, delete, cancel, recover, schedules.

Plain functions: ids and typed values in (what a person asked for is one BackupRequest or
RestoreRequest, requests.py), an optional progress callback, no HTTP request and no Celery. The
web console (backups/web), the worker (backups/tasks.py) and the command line
(backups/management/commands) are three doors into these same rooms. Elasticsearch is reached
only through backups/elastic and the backup storage only through backups/storage; the rows in
backups/models are the truth about every operation.

Every run (backup, restore, and the jobs on a backup: verify, delete, drill) goes through one
lifecycle (lifecycle.py): claimed, audited, ended by RunRow.transition(), its lock released,
people told;
a kind of run (a RunKind) writes its steps. Recovery (recovery.py) ends each kind's dead runs.

One module per concern; the import order among them has no circle:
requests, names, lookup, places, hooks, locking, heartbeat -> running -> lifecycle,
backup_steps -> recovery -> delete -> retention -> aftercare -> backup -> schedules; restore and
plan beside backup; verify, cancel, dispatch and notifications on their own; drill_scratch ->
recovery -> drill -> drill_schedule -> aftercare; jobs over verify, delete and drill.
"""

from backups.operations.archives import export_backup, import_archive, prepare_export
from backups.operations.backup import request_backup, run_backup
from backups.operations.cancel import cancel
from backups.operations.delete import collection_notes, delete_backup, set_pinned
from backups.operations.drill import DrillReport, drill_now, request_drill, run_drill
from backups.operations.drill_schedule import (
    check_drill_age,
    release_unsent_drill,
    start_due_drills,
)
from backups.operations.jobs import job_not_started, run_job
from backups.operations.lookup import get_backup, get_job, get_policy, get_restore
from backups.operations.maintenance_mode import (
    CLEAR_COMMAND as A4C_MAINTENANCE_CLEAR_COMMAND,
)
from backups.operations.maintenance_mode import stuck_maintenance_runs
from backups.operations.names import default_backup_name, validate_backup_name
from backups.operations.notifications import send_test_notification
from backups.operations.offsite import (
    ListedCopy,
    latest_copies,
    list_copies,
    offsite_upkeep,
    push_now,
    request_copy,
    run_copy,
)
from backups.operations.offsite_pull import pull_copy, split_copy_url
from backups.operations.places import store
from backups.operations.plan import file_changes, plan_restore
from backups.operations.recovery import record_worker_heartbeat, recover_stale_runs
from backups.operations.requests import BackupRequest, RestoreRequest
from backups.operations.restore import request_restore, run_restore
from backups.operations.retention import apply_retention, prune_safety_backups, retention_preview
from backups.operations.rollback import request_rollback
from backups.operations.schedules import (
    check_recent_backup,
    delete_policy,
    run_policy_now,
    save_policy,
    schedule_warning,
    set_paused,
    start_due_policies,
)
from backups.operations.sync import SyncReport, last_sync, sync_catalog
from backups.operations.verify import (
    VerifyReport,
    request_verify,
    run_verify,
    verify_backup,
)
from backups.selectors import lock_holder

__all__ = [
    "ListedCopy",
    "latest_copies",
    "list_copies",
    "offsite_upkeep",
    "pull_copy",
    "split_copy_url",
    "push_now",
    "request_copy",
    "run_copy",
    "DrillReport",
    "drill_now",
    "check_drill_age",
    "release_unsent_drill",
    "start_due_drills",
    "request_drill",
    "run_drill",
    "A4C_MAINTENANCE_CLEAR_COMMAND",
    "BackupRequest",
    "RestoreRequest",
    "SyncReport",
    "VerifyReport",
    "export_backup",
    "import_archive",
    "job_not_started",
    "last_sync",
    "prepare_export",
    "sync_catalog",
    "apply_retention",
    "cancel",
    "check_recent_backup",
    "default_backup_name",
    "collection_notes",
    "delete_backup",
    "delete_policy",
    "get_backup",
    "get_job",
    "get_policy",
    "get_restore",
    "lock_holder",
    "file_changes",
    "plan_restore",
    "prune_safety_backups",
    "record_worker_heartbeat",
    "recover_stale_runs",
    "request_backup",
    "request_restore",
    "request_rollback",
    "request_verify",
    "retention_preview",
    "run_backup",
    "run_job",
    "run_policy_now",
    "run_restore",
    "run_verify",
    "save_policy",
    "schedule_warning",
    "send_test_notification",
    "set_paused",
    "set_pinned",
    "start_due_policies",
    "store",
    "stuck_maintenance_runs",
    "validate_backup_name",
    "verify_backup",
]
