"""The Django project. Its Celery app (a4c_backup/celery.py) is loaded when it is first asked
for, not with every process: a management command that hands nothing to a worker never pays
for importing Celery (issue 28, item 3). backups/tasks.py loads it before any task is sent."""


def __getattr__(name: str):
    if name == "celery_app":
        from a4c_backup.celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["celery_app"]
