"""Makes sure the console has a superuser ``admin`` and says where its password is.

The password comes from A4C_ADMIN_PASSWORD when that is set. Otherwise the one saved in
VAR_DIR/admin-password.txt is used, or a new one is generated and saved there (mode 0600).
Without A4C_ADMIN_PASSWORD an existing admin's password is never changed, so running the
quickstart again cannot undo a password someone changed in the console.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "admin"
PASSWORD_VARIABLE = "A4C_ADMIN_PASSWORD"


def password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-password.txt"


def save_password(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(password + "\n")
    os.chmod(path, 0o600)  # os.open keeps the mode of a file that already existed


def shown(path: Path) -> str:
    """The path as a person at this prompt would type it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Command(BaseCommand):
    help = (
        f"Create the superuser {USERNAME!r} if missing. Password: ${PASSWORD_VARIABLE}, else the "
        "one saved in VAR_DIR/admin-password.txt, else a new one saved there."
    )

    def handle(self, *args, **options) -> None:
        path = password_file()
        from_environment = os.environ.get(PASSWORD_VARIABLE, "")
        saved = path.read_text().strip() if path.exists() else ""
        user_model = get_user_model()
        user = user_model.objects.filter(username=USERNAME).first()
        created = user is None
        if created:
            user = user_model(username=USERNAME)

        if from_environment:
            user.set_password(from_environment)
            where = f"the environment variable {PASSWORD_VARIABLE}"
        elif created:
            password = saved or secrets.token_urlsafe(12)
            if not saved:
                save_password(path, password)
            user.set_password(password)
            where = shown(path)
        elif saved and user.check_password(saved):
            where = shown(path)
        else:
            where = None

        user.is_active = user.is_staff = user.is_superuser = True
        user.save()

        if where is None:
            self.stdout.write(
                f"user {USERNAME}, with the password it already had ({shown(path)} does not "
                f"hold it; set {PASSWORD_VARIABLE} and run ensure_admin again to reset it)"
            )
        else:
            self.stdout.write(f"user {USERNAME}, password in {where}")
