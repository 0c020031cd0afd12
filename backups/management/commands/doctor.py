"""manage.py doctor: checks everything a backup needs and says how to fix what is not right."""

from backups.doctor import checks as health
from backups.management import arguments, base

MARKS = {"ok": "ok  ", "warning": "WARN", "error": "FAIL"}


class Command(base.Command):
    help = (
        "Check Elasticsearch, its snapshot repository, the data dir, the backup storage, "
        "Redis, the Celery workers and the lock. Exit code 1 when any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--worker-timeout",
            type=arguments.positive_seconds,
            default=1.0,
            metavar="SECONDS",
            help="How long to wait for workers to answer.",
        )
        arguments.add_json_argument(parser, "the checks")

    def check_configuration(self) -> None:
        pass  # a broken setting is one of the things doctor reports, not a reason to stop

    def handle(self, *args, **options):
        checks = health.run_checks(worker_timeout=options["worker_timeout"])
        errors = [c for c in checks if c.level == "error"]
        if options["json"]:
            self.emit_json({"ok": not errors, "checks": [c.as_dict() for c in checks]})
        else:
            width = max(len(c.name) for c in checks)
            for check in checks:
                self.say(f"[{MARKS[check.level]}] {check.name:<{width}}  {check.summary}")
                if check.fix:
                    self.say(f"       {'':<{width}}  fix: {check.fix}")
        if errors:
            names = ", ".join(c.name for c in errors)
            raise arguments.fail(
                f"{len(errors)} check{'s' if len(errors) != 1 else ''} failed: {names}"
            )
