from django.contrib import admin
from django.urls import include, path

from backups.web.views import public as views_public

urlpatterns = [
    path("healthz", views_public.healthz, name="healthz"),
    path("metrics", views_public.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("policies/", include("backups.web.policy_urls")),
    path("", include("backups.web.urls")),
]
