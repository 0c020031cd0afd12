"""The rows that are the truth about every operation, by concern: the runs (backups, restores,
jobs), their kinds and the lock (runs.py, with each run's lifecycle), the audit trail
(audit_trail.py), the schedules, notifications and small facts kept between runs (upkeep.py)."""

from backups.models.audit_trail import (
    AppendOnlyError,
    AuditAction,
    AuditChainHead,
    AuditEvent,
    AuditEventQuerySet,
)
from backups.models.runs import (
    A4CMaintenance,
    Backup,
    Job,
    OperationLock,
    RestoreRun,
    RunKind,
    RunRow,
    SnapshotLocation,
    Source,
    TransitionNotAllowed,
)
from backups.models.upkeep import NotificationDelivery, Policy, SystemState

__all__ = [
    "A4CMaintenance",
    "AppendOnlyError",
    "AuditChainHead",
    "AuditAction",
    "AuditEvent",
    "AuditEventQuerySet",
    "Backup",
    "Job",
    "NotificationDelivery",
    "OperationLock",
    "Policy",
    "RestoreRun",
    "RunKind",
    "RunRow",
    "SnapshotLocation",
    "Source",
    "SystemState",
    "TransitionNotAllowed",
]
