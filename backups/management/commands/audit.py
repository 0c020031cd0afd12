"""manage.py audit: reads the audit history, or exports it as CSV or JSON."""

import json

from backups import audit
from backups.management import arguments, base, output
from backups.models import AuditEvent


class Command(base.Command):
    help = (
        "Show who did what, oldest first. Filters combine; --csv and --json export every "
        "matching event with its hashes (check the chain with `manage.py audit_verify`)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="Only events by this user (web) or OS user (cli).")
        parser.add_argument("--action", help="Only this action (backup.run), or a group (backup).")
        parser.add_argument("--target", help="Only events about this backup.")
        parser.add_argument(
            "--since",
            metavar="WHEN",
            help="Only events since a date, a date and time, or an age (7d, 12h).",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            metavar="N",
            help="Only the N newest (default 50 on screen, all for exports).",
        )
        export = parser.add_mutually_exclusive_group()
        export.add_argument("--csv", action="store_true", help="Export as CSV.")
        export.add_argument("--json", action="store_true", help="Export as a JSON array.")

    def handle(self, *args, **options):
        events = AuditEvent.objects.all()
        if options["actor"]:
            events = events.filter(actor=options["actor"])
        if options["action"]:
            action = options["action"]
            events = (
                events.filter(action=action)
                if "." in action
                else events.filter(action__startswith=action + ".")
            )
        if options["target"]:
            events = events.filter(target=options["target"])
        if options["since"]:
            events = events.filter(at__gte=arguments.parse_since(options["since"]))
        exporting = options["csv"] or options["json"]
        limit = options["limit"] if options["limit"] is not None else (None if exporting else 50)
        if limit is not None:
            if limit < 1:
                raise arguments.fail("--limit must be 1 or more", arguments.USAGE)
            newest = list(events.order_by("-id").values_list("id", flat=True)[:limit])
            events = events.filter(id__in=newest)
        events = events.order_by("id")
        if options["csv"]:
            self._csv(events)
        elif options["json"]:
            self._json(events)
        else:
            self._table(events)

    def _csv(self, events) -> None:
        for line in audit.csv_lines(events.iterator()):
            self.stdout.write(line, ending="")

    def _json(self, events) -> None:
        self.stdout.write("[", ending="")
        for number, event in enumerate(events.iterator()):
            text = json.dumps(audit.export_row(event), ensure_ascii=False, default=str)
            self.stdout.write(("," if number else "") + "\n" + text, ending="")
        self.stdout.write("\n]")

    def _table(self, events) -> None:
        shown = 0
        for event in events:
            message = f": {event.message}" if event.message else ""
            self.say(
                f"{output.local_time(event.at)}  {event.actor} ({event.source})  {event.action} "
                f"{event.target}  {event.outcome}{message}"
            )
            shown += 1
        if not shown:
            self.say("no audit event matches")
