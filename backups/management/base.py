"""The base class of every management command: failures are ONE line on stderr
("error: ...") and an exit code a script can test (backups/management/arguments.py lists
them), never a traceback for a person's mistake.

Commands are thin: they parse arguments, call backups/operations and print. What they share
lives beside this module, each in a room named for it: arguments.py (shared options, values,
exit codes), prompts.py (confirmations), follow.py (running or queueing a run, following it,
Ctrl-C), output.py (summaries and a run's last words), progress.py (the progress reporter).
This module must not do the work itself: that lives in backups/operations.
"""

from __future__ import annotations

import json
import sys

from django.conf import settings
from django.core import checks as django_checks
from django.core.management.base import BaseCommand, CommandError, handle_default_options
from django.db import DatabaseError, connections

from backups.errors import BackupError
from backups.formatting import printable
from backups.management.arguments import FAILED, USAGE


class Command(BaseCommand):
    """A command whose errors are one stderr line and one of the exit codes above.

    a4c's settings checks (backups/doctor/settings_checks.py, tag SETTINGS) run before
    ``handle``, not Django's others (they import every URL and view: `manage.py check` runs
    them), and only errors stop the command, as a usage error; warnings (a data dir not
    created yet) would otherwise be printed on every run
    and mailed by cron every night. ``manage.py doctor`` shows them all.
    """

    requires_system_checks: list = []

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        prog = parser.prog

        def one_line_error(message: str):
            text = f"{message} (see `{prog} --help`)"
            if parser.called_from_command_line:
                parser.exit(USAGE, f"error: {text}\n")
            raise CommandError(text, returncode=USAGE)

        parser.error = one_line_error
        return parser

    def run_from_argv(self, argv):
        # Django's version prints "CommandError: ..."; scripts and people read "error: ...".
        self._called_from_command_line = True
        parser = self.create_parser(argv[0], argv[1])
        options = parser.parse_args(argv[2:])
        cmd_options = vars(options)
        args = cmd_options.pop("args", ())
        handle_default_options(options)
        try:
            self.execute(*args, **cmd_options)
        except CommandError as exc:
            if options.traceback:
                raise
            self.stderr.write(f"error: {printable(exc)}")
            sys.exit(exc.returncode)
        finally:
            connections.close_all()

    def execute(self, *args, **options):
        try:
            self.check_configuration()
            return super().execute(*args, **options)
        except BackupError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc
        except DatabaseError as exc:
            new = "no such table" in str(exc) or "does not exist" in str(exc)
            raise CommandError(
                f"the database {settings.DATABASES['default']['NAME']} failed: {exc}"
                + ("; run `manage.py migrate` to create its tables" if new else ""),
                returncode=FAILED,
            ) from exc

    def check_configuration(self) -> None:
        """Stops at a setting the system checks call an error, before anything runs."""
        from backups.doctor.settings_checks import SETTINGS

        # only a4c's settings checks: Django's others import every URL, view and form
        errors = [
            m
            for m in django_checks.run_checks(tags=[SETTINGS])
            if m.level >= django_checks.ERROR and not m.is_silenced()
        ]
        if errors:
            first = errors[0]
            more = (
                f" (and {len(errors) - 1} more: run `manage.py doctor`)" if len(errors) > 1 else ""
            )
            hint = f" {first.hint}" if first.hint else ""
            raise CommandError(f"configuration: {first.msg}{hint}{more}", returncode=USAGE)

    # --- output -----------------------------------------------------------------------------
    def emit_json(self, value) -> None:
        self.stdout.write(json.dumps(value, default=str, ensure_ascii=False))

    def say(self, text: str = "") -> None:
        """One line for a person: names and texts in it may come from outside (a record, an
        archive), so control characters are shown escaped, never sent to the terminal."""
        self.stdout.write(printable(text))

    def warn(self, text: str) -> None:
        self.stderr.write(printable(f"warning: {text}"))
