"""The policies section of the console, mounted at /policies/ by a4c_backup/urls.py."""

from django.urls import path

from backups.web.views import policies as views

app_name = "policies"

urlpatterns = [
    path("", views.policy_list, name="list"),
    path("new/", views.policy_new, name="new"),
    path("<int:pk>/", views.policy_detail, name="detail"),
    path("<int:pk>/edit/", views.policy_edit, name="edit"),
    path("<int:pk>/run/", views.policy_run, name="run"),
    path("<int:pk>/pause/", views.policy_pause, name="pause"),
    path("<int:pk>/retention/", views.policy_apply_retention, name="apply_retention"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/test/", views.notification_test, name="notification_test"),
]
