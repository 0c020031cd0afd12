"""Every page of the console by group, so a page is found by its URL here. a4c_backup/urls.py
mounts them: the console at /, policies at /policies/, the machine endpoints at the root."""

from django.urls import include, path

from backups.web.views import (
    archives,
    audit,
    backups,
    catalog,
    dashboard,
    policies,
    public,
    restores,
)

dashboard_urls = [
    path("", dashboard.dashboard, name="dashboard"),
    path("live/dashboard/", dashboard.dashboard_live, name="dashboard_live"),
    path("live/health/", dashboard.health_fragment, name="health"),
]

backup_urls = [
    path("backups/", backups.backup_list, name="backup_list"),
    path("backups/sync/", catalog.catalog_sync, name="catalog_sync"),
    path("backups/new/", backups.backup_new, name="backup_new"),
    path("backups/new/check-name/", backups.backup_name_check, name="backup_name_check"),
    path("backups/<int:pk>/", backups.backup_detail, name="backup_detail"),
    path("backups/<int:pk>/live/", backups.backup_live, name="backup_live"),
    path("backups/<int:pk>/verify/", backups.backup_verify, name="backup_verify"),
    path("backups/<int:pk>/drill/", backups.backup_drill, name="backup_drill"),
    path(
        "backups/<int:pk>/drill/<int:job>/cancel/",
        backups.backup_drill_cancel,
        name="backup_drill_cancel",
    ),
    path("backups/<int:pk>/delete/", backups.backup_delete, name="backup_delete"),
    path("backups/<int:pk>/pin/", backups.backup_pin, name="backup_pin"),
    path("backups/<int:pk>/cancel/", backups.backup_cancel, name="backup_cancel"),
    path("backups/<int:pk>/manifest/", backups.backup_manifest, name="backup_manifest"),
    path("backups/<int:pk>/archive/", archives.backup_archive, name="backup_archive"),
]

restore_urls = [
    path("restore/", restores.restore_new, name="restore_new"),
    path("restore/plan-files.txt", restores.restore_plan_paths, name="restore_plan_paths"),
    path("restores/", restores.restore_list, name="restore_list"),
    path("restores/<int:pk>/", restores.restore_detail, name="restore_detail"),
    path("restores/<int:pk>/live/", restores.restore_live, name="restore_live"),
    path("restores/<int:pk>/cancel/", restores.restore_cancel, name="restore_cancel"),
    path("restores/<int:pk>/rollback/", restores.restore_rollback, name="restore_rollback"),
]

audit_urls = [
    path("audit/", audit.audit_list, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit_export"),
    path("audit/chain/", audit.audit_chain, name="audit_chain"),
]

policy_urls = [
    path("", policies.policy_list, name="list"),
    path("new/", policies.policy_new, name="new"),
    path("<int:pk>/", policies.policy_detail, name="detail"),
    path("<int:pk>/edit/", policies.policy_edit, name="edit"),
    path("<int:pk>/delete/", policies.policy_delete, name="delete"),
    path("<int:pk>/run/", policies.policy_run, name="run"),
    path("<int:pk>/pause/", policies.policy_pause, name="pause"),
    path("<int:pk>/retention/", policies.policy_apply_retention, name="apply_retention"),
    path("notifications/", policies.notifications, name="notifications"),
    path("notifications/test/", policies.notification_test, name="notification_test"),
]

# For machines: no sign-in (load balancers, Prometheus with its bearer token).
public_urls = [
    path("healthz", public.healthz, name="healthz"),
    path("metrics", public.metrics, name="metrics"),
]

urlpatterns = [
    *public_urls,
    path("policies/", include((policy_urls, "policies"))),
    path("", include((dashboard_urls + backup_urls + restore_urls + audit_urls, "backups"))),
]
