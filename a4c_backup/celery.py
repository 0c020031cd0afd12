import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a4c_backup.settings")

app = Celery("a4c_backup")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
