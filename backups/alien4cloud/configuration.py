"""Alien4Cloud's settings (A4C_SERVER_*, A4C_MAINTENANCE), read and checked without the
network and without the HTTP client: every command's settings check reads them at its start
(issue 28, item 3). The client (backups/alien4cloud/client.py) re-exports them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from backups.errors import ConfigError

MODES = ("off", "auto", "required")
PASSWORD_SETTINGS = "A4C_SERVER_PASSWORD (or A4C_SERVER_PASSWORD_FILE)"


def mode() -> str:
    """A4C_MAINTENANCE, checked: off, auto or required."""
    value = (settings.A4C_MAINTENANCE or "auto").strip().lower()
    if value not in MODES:
        raise ConfigError(
            f"A4C_MAINTENANCE is {settings.A4C_MAINTENANCE!r}: set it to off, auto or required."
        )
    return value


def configured() -> bool:
    return bool(settings.A4C_SERVER_URL)


def password() -> str:
    """A4C_SERVER_PASSWORD_FILE's first line when it is set, else A4C_SERVER_PASSWORD."""
    path = settings.A4C_SERVER_PASSWORD_FILE
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"A4C_SERVER_PASSWORD_FILE names {path}, which cannot be read: {exc.strerror}."
            ) from None
        if not lines or not lines[0]:
            raise ConfigError(f"A4C_SERVER_PASSWORD_FILE names {path}, whose first line is empty.")
        return lines[0]
    return settings.A4C_SERVER_PASSWORD


def settings_problems() -> list[str]:
    """What is missing or wrong in the A4C_SERVER_* settings; [] when they can be used."""
    problems = []
    try:
        mode()
    except ConfigError as exc:
        problems.append(exc.message)
    url = settings.A4C_SERVER_URL
    if not url:
        return problems
    if not url.startswith(("http://", "https://")):
        problems.append(f"A4C_SERVER_URL is {url!r}: give the full http:// or https:// URL.")
    if not settings.A4C_SERVER_USERNAME:
        problems.append(
            "A4C_SERVER_USERNAME is not set: name an Alien4Cloud user with the ADMIN role."
        )
    try:
        if not password():
            problems.append(f"{PASSWORD_SETTINGS} is not set: give that user's password.")
    except ConfigError as exc:
        problems.append(exc.message)
    ca = settings.A4C_SERVER_CA_CERT
    if ca and not Path(ca).is_file():
        problems.append(f"A4C_SERVER_CA_CERT names {ca}, which is not a file.")
    return problems
