"""manage.py prune: applies a retention rule (the rules are in backups/operations/retention.py)."""

from datetime import timedelta

from django.utils import timezone

from backups import operations
from backups.errors import BackupError, Busy
from backups.management import base as cli
from backups.models import Backup, RestoreRun
from backups.operations import retention


class Command(cli.Command):
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
        cli.add_yes_argument(parser, "Delete")
        self.add_json_argument(parser, "the verdicts")

    def handle(self, *args, **options):
        older_than = (
            timedelta(days=options["older_than"]) if options["older_than"] is not None else None
        )
        try:
            retention.check_rule(options["keep_last"], older_than)
        except ValueError as exc:
            raise cli.fail(str(exc), cli.USAGE) from None
        verdicts = retention.select(
            candidates(), keep_last=options["keep_last"], older_than=older_than, now=timezone.now()
        )
        going = retention.to_delete(verdicts)
        kept = [v for v in verdicts if not v.delete]
        if options["dry_run"]:
            self._show(going, kept, options, dry_run=True)
            return
        if going:
            self.can_confirm(options, f"deleting {len(going)} backups")
            if not options["json"]:
                self._show(going, kept, options, dry_run=False)
            self.confirm(
                options,
                question=f"Delete these {len(going)} backups? Type yes to go on: ",
                expected="yes",
                what=f"deleting {len(going)} backups",
            )
        elif not options["json"]:
            self.say(f"nothing to delete; {len(kept)} backups kept")
        deleted, failed = self._delete(going, options)
        if options["json"]:
            self.emit_json(
                {
                    "deleted": deleted,
                    "failed": [{"name": n, "error": e} for n, e in failed],
                    "kept": [_verdict(v) for v in kept],
                }
            )
        if failed:
            raise cli.fail(
                f"{len(failed)} of {len(going)} deletions failed, first "
                f"{failed[0][0]}: {failed[0][1]}"
            )

    def _delete(self, going, options) -> tuple[list[str], list[tuple[str, str]]]:
        """Deletes oldest first; a busy lock stops the run, other failures are collected."""
        deleted, failed = [], []
        for number, verdict in enumerate(going, start=1):
            last = number == len(going)  # unused blobs are collected once, after the last one
            try:
                operations.delete_backup(verdict.backup.id, cli.actor(), collect=last)
            except Busy as exc:
                raise cli.fail(f"stopped after {len(deleted)} deletions: {exc}", cli.BUSY) from exc
            except BackupError as exc:
                failed.append((verdict.backup.name, str(exc)))
                continue
            deleted.append(verdict.backup.name)
            if not options["json"]:
                self.say(f"deleted {verdict.backup.name}")
        return deleted, failed

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
                f"  {v.backup.name:<{width}}  {cli.local_time(v.backup.created_at)}  {v.reason}"
            )
        listed = bool(kept) and (dry_run or options["verbosity"] >= 2)
        self.say(f"keeping {len(kept)}" + (":" if listed else ""))
        if listed:
            for v in kept:
                self.say(f"  {v.backup.name}  {v.reason}")


def candidates() -> list[retention.Candidate]:
    """Every finished backup as retention sees it; the newest restore's safety backup protected."""
    protected = {}
    newest_restore = (
        RestoreRun.objects.exclude(safety_backup=None).order_by("-created_at", "-id").first()
    )
    if newest_restore is not None:
        protected[newest_restore.safety_backup_id] = (
            f"safety backup of the newest restore (#{newest_restore.pk}): a rollback needs it"
        )
    rows = Backup.objects.filter(status__in=retention.CONSIDERED).only(
        "id", "name", "status", "created_at", "pinned", "trigger"
    )
    return [
        retention.Candidate(
            id=b.pk,
            name=b.name,
            status=b.status,
            created_at=b.created_at,
            pinned=b.pinned,
            safety=b.trigger == Backup.Trigger.SAFETY,
            protected=protected.get(b.pk, ""),
        )
        for b in rows
    ]


def _verdict(verdict: retention.Verdict) -> dict:
    b = verdict.backup
    return {
        "id": b.id,
        "name": b.name,
        "status": b.status,
        "created_at": b.created_at.isoformat(),
        "reason": verdict.reason,
    }
