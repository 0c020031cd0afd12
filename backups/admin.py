"""The Django admin: a read-only window on the rows, for those who know it.

Changing a run row here would lie about what happened (a backup marked succeeded that never
ran, a lock freed under a running restore), so runs and the lock are read-only; only a
backup's description can be edited. Audit events cannot be added, changed or deleted at all.
Backups are created, restored and deleted from the console or the command line, which do the
work the row describes; policies are saved through operations.save_policy, which checks the
schedule and sets the next run, so they are read-only here too (deleting one goes through
operations.delete_policy, which records it).
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from backups import operations
from backups.audit import Actor
from backups.models import (
    AuditChainHead,
    AuditEvent,
    Backup,
    Job,
    NotificationDelivery,
    OperationLock,
    Policy,
    RestoreRun,
    SystemState,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field shown, nothing added, changed or deleted."""

    editable_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        names = [f.name for f in self.model._meta.fields]
        return [n for n in names if n not in self.editable_fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return bool(self.editable_fields) and super().has_change_permission(request, obj)


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    editable_fields = ("description",)
    list_display = (
        "name",
        "status",
        "trigger",
        "actor",
        "created_at",
        "finished_at",
        "file_count",
        "pinned",
        "console",
    )
    list_filter = ("status", "trigger", "include_elasticsearch", "include_files", "pinned")
    search_fields = ("name", "actor", "description")
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="In the console")
    def console(self, obj: Backup) -> str:
        return format_html('<a href="{}">open</a>', reverse("backups:backup_detail", args=[obj.pk]))


@admin.register(RestoreRun)
class RestoreRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "backup",
        "status",
        "scope",
        "actor",
        "created_at",
        "finished_at",
        "safety_backup",
        "rolled_back",
        "console",
    )
    list_filter = ("status", "scope", "rolled_back")
    search_fields = ("backup__name", "actor")
    list_select_related = ("backup", "safety_backup")
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="In the console")
    def console(self, obj: RestoreRun) -> str:
        return format_html(
            '<a href="{}">open</a>', reverse("backups:restore_detail", args=[obj.pk])
        )


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "backup", "status", "actor", "created_at", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("backup__name", "actor")
    list_select_related = ("backup",)
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "at", "actor", "source", "action", "target", "outcome", "ip")
    list_filter = ("outcome", "source", "action")
    search_fields = ("actor", "target", "message")
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False

    def get_actions(self, request):
        return {}  # not even the bulk "delete selected"


@admin.register(OperationLock)
class OperationLockAdmin(ReadOnlyAdmin):
    list_display = ("kind", "label", "actor", "acquired_at")


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(ReadOnlyAdmin):
    list_display = ("last_hash", "count")


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "schedule",
        "paused",
        "next_run_at",
        "last_success_at",
        "last_failure_at",
    )
    list_filter = ("paused",)

    # Read-only like the rest, but a policy may go: through the same operation as the console
    # and `manage.py policy delete`, so the audit history records who removed it.
    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("backups.add_backup")

    def delete_model(self, request, obj):
        operations.delete_policy(obj.pk, Actor.from_request(request))

    def delete_queryset(self, request, queryset):
        for policy in queryset:
            operations.delete_policy(policy.pk, Actor.from_request(request))


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event", "channel", "target", "ok")
    list_filter = ("ok", "channel", "event")
    show_full_result_count = False


@admin.register(SystemState)
class SystemStateAdmin(ReadOnlyAdmin):
    list_display = ("key", "updated_at")
