from a4c_backup.celery import app as celery_app

__all__ = ["celery_app"]
