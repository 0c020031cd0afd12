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

The names below are loaded on first use (PEP 562): a command that needs one room does not
import every room, nor the Elasticsearch client with them (issue 28, item 3).
"""

from importlib import import_module

# Bound now: its module has its name, and importing that module later would shadow a lazy name
from backups.operations.cancel import cancel  # noqa: F401  (in __all__, below)

# name -> the module that holds it (".x": backups.operations.x), and its own name there
_WHERE = {
    "export_backup": ".archives",
    "import_archive": ".archives",
    "prepare_export": ".archives",
    "request_backup": ".backup",
    "run_backup": ".backup",
    "collection_notes": ".delete",
    "delete_backup": ".delete",
    "set_pinned": ".delete",
    "DrillReport": ".drill",
    "drill_now": ".drill",
    "request_drill": ".drill",
    "run_drill": ".drill",
    "check_drill_age": ".drill_schedule",
    "release_unsent_drill": ".drill_schedule",
    "start_due_drills": ".drill_schedule",
    "job_not_started": ".jobs",
    "run_job": ".jobs",
    "get_backup": ".lookup",
    "get_job": ".lookup",
    "get_policy": ".lookup",
    "get_restore": ".lookup",
    "A4C_MAINTENANCE_CLEAR_COMMAND": ".maintenance_mode:CLEAR_COMMAND",
    "stuck_maintenance_runs": ".maintenance_mode",
    "default_backup_name": ".names",
    "validate_backup_name": ".names",
    "send_test_notification": ".notifications",
    "ListedCopy": ".offsite",
    "ask_again_failed_copies": ".offsite",
    "latest_copies": ".offsite",
    "list_copies": ".offsite",
    "offsite_upkeep": ".offsite",
    "push_now": ".offsite",
    "request_copy": ".offsite",
    "run_copy": ".offsite",
    "pull_copy": ".offsite_pull",
    "split_copy_url": ".offsite_pull",
    "store": ".places",
    "file_changes": ".plan",
    "plan_restore": ".plan",
    "record_worker_heartbeat": ".recovery",
    "recover_stale_runs": ".recovery",
    "BackupRequest": ".requests",
    "RestoreRequest": ".requests",
    "request_restore": ".restore",
    "run_restore": ".restore",
    "apply_retention": ".retention",
    "prune_safety_backups": ".retention",
    "retention_preview": ".retention",
    "request_rollback": ".rollback",
    "check_recent_backup": ".schedules",
    "delete_policy": ".schedules",
    "run_policy_now": ".schedules",
    "save_policy": ".schedules",
    "schedule_warning": ".schedules",
    "set_paused": ".schedules",
    "start_due_policies": ".schedules",
    "SyncReport": ".sync",
    "last_sync": ".sync",
    "sync_catalog": ".sync",
    "VerifyReport": ".verify",
    "request_verify": ".verify",
    "run_verify": ".verify",
    "verify_backup": ".verify",
    "lock_holder": "backups.selectors",
}
__all__ = sorted({*_WHERE, "cancel"})


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = where.partition(":")
    value = getattr(import_module(module, __name__), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
