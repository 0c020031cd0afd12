from django.contrib import admin
from django.urls import include, path

from backups.web import session_admin  # noqa: F401 - adds "Sign out everywhere" to Users
from backups.web.views import account as views_account

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/logout/", views_account.sign_out, name="logout"),
    path("accounts/session-ended/", views_account.session_ended, name="session_ended"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("backups.web.urls")),
]
