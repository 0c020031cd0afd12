from django.apps import AppConfig


class BackupsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        # Imported for what importing does: registers the system checks and the audit receivers.
        from backups import signals  # noqa: F401
        from backups.doctor import settings_checks  # noqa: F401
