from django.urls import path

from backups.web.views import console as views

app_name = "backups"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("live/dashboard/", views.dashboard_live, name="dashboard_live"),
    path("live/health/", views.health_fragment, name="health"),
    path("backups/", views.backup_list, name="backup_list"),
    path("backups/new/", views.backup_new, name="backup_new"),
    path("backups/new/check-name/", views.backup_name_check, name="backup_name_check"),
    path("backups/<int:pk>/", views.backup_detail, name="backup_detail"),
    path("backups/<int:pk>/live/", views.backup_live, name="backup_live"),
    path("backups/<int:pk>/verify/", views.backup_verify, name="backup_verify"),
    path("backups/<int:pk>/delete/", views.backup_delete, name="backup_delete"),
    path("backups/<int:pk>/pin/", views.backup_pin, name="backup_pin"),
    path("backups/<int:pk>/cancel/", views.backup_cancel, name="backup_cancel"),
    path("backups/<int:pk>/manifest/", views.backup_manifest, name="backup_manifest"),
    path("restore/", views.restore_new, name="restore_new"),
    path("restores/", views.restore_list, name="restore_list"),
    path("restores/<int:pk>/", views.restore_detail, name="restore_detail"),
    path("restores/<int:pk>/live/", views.restore_live, name="restore_live"),
    path("restores/<int:pk>/cancel/", views.restore_cancel, name="restore_cancel"),
    path("restores/<int:pk>/rollback/", views.restore_rollback, name="restore_rollback"),
    path("audit/", views.audit_list, name="audit"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    path("audit/chain/", views.audit_chain, name="audit_chain"),
]
