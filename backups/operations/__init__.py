"""The work itself: backup, restore, rollback, verify, delete, cancel, recover.

Plain functions: ids and plain arguments in, an optional progress callback, no request and no
Celery. The web console (views.py), the worker (tasks.py) and the command line
(management/commands) are three doors into these same rooms. Elasticsearch is reached only
through backups/elastic/client.py and the backup storage only through backups/storage/store.py; the rows
in backups/models.py are the truth about every operation.
"""

from backups.operations.backup import request_backup, run_backup
from backups.operations.common import (
    default_backup_name,
    get_backup,
    lock_holder,
    store,
    validate_backup_name,
)
from backups.operations.maintenance import (
    VerifyReport,
    cancel,
    delete_backup,
    record_worker_heartbeat,
    recover_stale_runs,
    request_verify,
    run_verify,
    set_pinned,
    verify_backup,
    verify_not_started,
)
from backups.operations.notifications import send_test_notification
from backups.operations.plan import plan_restore
from backups.operations.policies import (
    apply_retention,
    check_recent_backup,
    prune_safety_backups,
    retention_preview,
    run_policy_now,
    save_policy,
    set_paused,
    start_due_policies,
)
from backups.operations.restore import request_restore, request_rollback, run_restore

__all__ = [
    "VerifyReport",
    "apply_retention",
    "check_recent_backup",
    "prune_safety_backups",
    "record_worker_heartbeat",
    "retention_preview",
    "run_policy_now",
    "save_policy",
    "send_test_notification",
    "set_pinned",
    "set_paused",
    "start_due_policies",
    "cancel",
    "default_backup_name",
    "delete_backup",
    "get_backup",
    "lock_holder",
    "plan_restore",
    "recover_stale_runs",
    "request_backup",
    "request_restore",
    "request_rollback",
    "run_backup",
    "run_restore",
    "store",
    "validate_backup_name",
    "request_verify",
    "run_verify",
    "verify_backup",
    "verify_not_started",
]
