"""manage.py prune: applies a retention rule (the rules are in backups/operations/retention.py)."""

from datetime import timedelta

from backups.errors import Busy, InvalidInput
from backups.management import arguments, base, output, prompts
from backups.operations import retention


class Command(base.Command):
    help = (
        "Delete old backups: keep the N newest succeeded ones (--keep-last), or those younger "
        "than DAYS (--older-than), or both rules at once. Never the newest succeeded backup, a "
        "pinned one, nor the safety backup the newest restore would roll back to."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keep-last", type=int, metavar="N", help="Keep the N newest succeeded backups."
        )
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="DAYS",
            help="Delete only backups created more than DAYS ago.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would be deleted and why; delete nothing.",
        )
        arguments.add_yes_argument(parser, "Delete")
        arguments.add_json_argument(parser, "the verdicts")

    def handle(self, *args, **options):
        older_than = (
            timedelta(days=options["older_than"]) if options["older_than"] is not None else None
        )
        try:
            verdicts = retention.prune_preview(options["keep_last"], older_than)
        except InvalidInput as exc:
            raise arguments.fail(str(exc), arguments.USAGE) from None
        going = retention.to_delete(verdicts)
        kept = [v for v in verdicts if not v.delete]
        if options["dry_run"]:
            self._show(going, kept, options, dry_run=True)
            return
        if going:
            prompts.can_confirm(options, f"deleting {len(going)} backups")
            if not options["json"]:
                self._show(going, kept, options, dry_run=False)
            prompts.confirm(
                self.stderr,
                options,
                question=f"Delete these {len(going)} backups? Type yes to go on: ",
                expected="yes",
                what=f"deleting {len(going)} backups",
            )
        elif not options["json"]:
            self.say(f"nothing to delete; {len(kept)} backups kept")
        try:
            done = retention.delete_backups(going, arguments.actor())
        except Busy as exc:
            raise arguments.fail(f"stopped: {exc}", arguments.BUSY) from exc
        if options["json"]:
            self.emit_json(
                {
                    "deleted": done.names,
                    "failed": [{"name": n, "error": e} for n, e in done.failed],
                    "kept": [_verdict(v) for v in kept],
                }
            )
        else:
            for name in done.names:
                self.say(f"deleted {name}")
        if done.failed:
            raise arguments.fail(
                f"{len(done.failed)} of {len(going)} deletions failed, first "
                f"{done.failed[0][0]}: {done.failed[0][1]}"
            )

    def _show(self, going, kept, options, *, dry_run: bool) -> None:
        if options["json"]:
            self.emit_json(
                {
                    "dry_run": dry_run,
                    "delete": [_verdict(v) for v in going],
                    "keep": [_verdict(v) for v in kept],
                }
            )
            return
        verb = "would delete" if dry_run else "deleting"
        self.say(
            f"{verb} {len(going)} backup{'s' if len(going) != 1 else ''}" + (":" * bool(going))
        )
        width = max((len(v.backup.name) for v in going), default=0)
        for v in going:
            self.say(
                f"  {v.backup.name:<{width}}  {output.local_time(v.backup.created_at)}  {v.reason}"
            )
        listed = bool(kept) and (dry_run or options["verbosity"] >= 2)
        self.say(f"keeping {len(kept)}" + (":" if listed else ""))
        if listed:
            for v in kept:
                self.say(f"  {v.backup.name}  {v.reason}")


def _verdict(verdict: retention.Verdict) -> dict:
    b = verdict.backup
    return {
        "id": b.id,
        "name": b.name,
        "status": b.status,
        "created_at": b.created_at.isoformat(),
        "reason": verdict.reason,
    }
