"""Running management commands in the test process, as `manage.py` would."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.management import load_command_class


@dataclass
class Ran:
    code: int
    out: str
    err: str


def manage(capsys, *argv: str) -> Ran:
    """Runs a command as `manage.py` would, exit code and all, in this process."""
    command = load_command_class("backups", argv[0])
    try:
        command.run_from_argv(["manage.py", *argv])
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return Ran(code, out, err)
