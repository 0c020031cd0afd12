"""manage.py audit_verify: checks the audit history's hash chain (exit 5 when broken)."""

from backups import audit
from backups.management import arguments, base


class Command(base.Command):
    help = (
        "Re-compute every audit event's hash and link. Exit code 5 names the first event that "
        "was changed, removed or inserted behind the application's back."
    )

    def add_arguments(self, parser):
        arguments.add_json_argument(parser, "the report")

    def handle(self, *args, **options):
        report = audit.verify_chain()
        if options["json"]:
            self.emit_json(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "problem": report.problem,
                    "event": report.event_id,
                }
            )
        elif report.ok:
            self.say(f"the audit chain is intact: {report.checked} events checked")
        if not report.ok:
            raise arguments.fail(
                f"the audit chain is broken after {report.checked} good events: {report.problem}",
                arguments.VERIFY_FAILED,
            )
