from django.apps import AppConfig


class BackupsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers the system checks and audit receivers)
