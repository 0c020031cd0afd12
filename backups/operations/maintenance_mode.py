"""Alien4Cloud's maintenance mode around one backup or restore, and after a dead worker.

A MaintenanceWindow is opened before the work (a backup's snapshot, a restore's safety backup)
and closed as soon as the data is taken or put back, whatever the outcome. It follows
A4C_MAINTENANCE: ``off`` never touches Alien4Cloud; ``auto`` uses maintenance when Alien4Cloud
is configured and answers, and otherwise runs without it, saying so on the run; ``required``
refuses to start without it. Someone else's maintenance (on before we came) is never taken
over nor disabled.

The run row is written before maintenance is enabled (``a4c_maintenance=held``), so recovery
knows what a dead worker held and disables exactly that; a maintenance the tool enabled and
could not disable is marked ``stuck``, which the dashboard shows in red with the command that
clears it (``manage.py a4c_maintenance off``, end_stuck_maintenance below).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from django.conf import settings

from backups import audit
from backups.alien4cloud import client as alien4cloud
from backups.audit import Actor
from backups.elastic import client as elastic
from backups.errors import (
    Alien4CloudError,
    Alien4CloudUnreachable,
    BackupError,
    ConfigError,
    MaintenanceHeldElsewhere,
)
from backups.models import A4CMaintenance, AuditEvent, Backup, RestoreRun
from backups.operations.hooks import run_hook
from backups.operations.restore_state import RestoreState

log = logging.getLogger("backups.operations")
Outcome = AuditEvent.Outcome
CLEAR_COMMAND = "python manage.py a4c_maintenance off"
# Each banner update rewrites Alien4Cloud's maintenance index and adds an audit trace: none
# while indices are counted and snapshotted (the counts must be the snapshot's), nor while
# they are deleted and restored (a write would recreate an index under the restore's feet).
QUIET_PHASES = ("elasticsearch", "rolling back")
RESTART_ADVICE = (
    "Restart Alien4Cloud now: its caches and in-memory state predate the restore "
    "(A4C_RESTART_COMMAND can do it for you)."
)
ACTION = "a4c.maintenance"


def describe(run) -> tuple[str, int]:
    """The message and percentage Alien4Cloud shows its users for a run's progress."""
    doing = "backing up" if isinstance(run, Backup) else f"restoring {run.backup.name}"
    phase = run.phase or "starting"
    percent = run.percent  # the whole run's (backups/progress.py): it never goes back
    shown = f"{phase} {percent}%" if percent else phase
    return f"a4c-backup: {doing}, {shown}", percent


def _run_actor(run) -> Actor:
    return Actor(name=run.actor, source=run.source)


def _write(run, state: str, note: str = "") -> None:
    type(run).objects.filter(pk=run.pk).update(a4c_maintenance=state, a4c_maintenance_note=note)
    run.a4c_maintenance, run.a4c_maintenance_note = state, note


def _audit(run, outcome: str, message: str, why: str) -> None:
    is_backup = isinstance(run, Backup)
    audit.record(
        _run_actor(run),
        ACTION,
        target=run.name if is_backup else run.backup.name,
        outcome=outcome,
        message=message,
        parameters={"why": why},
        **({"backup": run} if is_backup else {"restore": run, "backup": run.backup}),
    )


class MaintenanceWindow:
    """Alien4Cloud's maintenance mode for one run: open, report progress, close."""

    def __init__(self, run, why: str):
        # why: "backup nightly-1", "restore #4 of nightly-1": the audit's and banner's reason
        self.run = run
        self.why = why
        self.server: alien4cloud.Server | None = None
        self.held = False
        self.foreign = False
        self._last_sent = 0.0
        self._last_text = ""
        self._last_phase: str | None = None
        self._update_failed = False

    @property
    def on(self) -> bool:
        """Alien4Cloud is in maintenance mode now, ours or someone else's."""
        return self.held or self.foreign

    # --- open ---------------------------------------------------------------------------
    def open(self) -> None:
        """Enables maintenance as A4C_MAINTENANCE says; raises only to refuse the run."""
        mode = alien4cloud.mode()
        if mode == "off":
            return
        if not alien4cloud.configured():
            if mode == "required":
                raise ConfigError(
                    "A4C_MAINTENANCE=required, but A4C_SERVER_URL is not set: set it (and "
                    "A4C_SERVER_USERNAME, A4C_SERVER_PASSWORD), or set A4C_MAINTENANCE=auto."
                )
            return
        refuse = mode == "required"
        try:
            self.server = alien4cloud.server()
            _write(self.run, A4CMaintenance.HELD)  # before: a worker dying next is recovered
            self.server.enable_maintenance()
        except MaintenanceHeldElsewhere as exc:
            if self._adopt():
                return
            who = self._holder()
            note = f"Alien4Cloud was in maintenance mode already ({who}); it was left as it was."
            _write(self.run, A4CMaintenance.FOREIGN, note)
            _audit(self.run, Outcome.INFO, note, self.why)
            self.foreign = True
            if refuse:
                raise MaintenanceHeldElsewhere(
                    f"{note} With A4C_MAINTENANCE=required the {self._kind()} does not start "
                    "over someone else's maintenance: wait for them to finish."
                ) from exc
            return
        except (Alien4CloudError, ConfigError) as exc:
            if isinstance(exc, Alien4CloudUnreachable) and self._ours_after_all():
                self.held = True  # the answer was lost, not the enable
                _audit(self.run, Outcome.SUCCEEDED, f"enabled for {self.why}", self.why)
                return
            note = f"Maintenance mode could not be enabled: {exc}"
            _write(self.run, A4CMaintenance.UNAVAILABLE, note)
            _audit(self.run, Outcome.FAILED, note, self.why)
            if refuse:
                raise type(exc)(
                    f"{exc} With A4C_MAINTENANCE=required the {self._kind()} does not start "
                    "without maintenance mode.",
                    detail=exc.detail,
                ) from exc
            log.warning("%s runs without maintenance mode: %s", self.why, exc)
            return
        self.held = True
        _audit(self.run, Outcome.SUCCEEDED, f"enabled for {self.why}", self.why)
        self.report(self.run, force=True)

    def _adopt(self) -> bool:
        """Takes over the maintenance an earlier run of this tool kept on (a restore whose
        rollback failed): the restore that puts the data right again is the one to end it. A
        backup never does: it would let Alien4Cloud's users in on data that is not whole."""
        if not isinstance(self.run, RestoreRun):
            return False
        kept = stuck_maintenance_runs()
        if not kept or not self._ours_after_all():
            return False
        for earlier in kept:
            _write(earlier, A4CMaintenance.RELEASED, f"Taken over by {self.why}.")
        self.held = True
        _write(self.run, A4CMaintenance.HELD)
        _audit(
            self.run,
            Outcome.SUCCEEDED,
            f"kept on by an earlier run, taken over for {self.why}",
            self.why,
        )
        self.report(self.run, force=True)
        return True

    def _ours_after_all(self) -> bool:
        try:
            state = self.server.maintenance() if self.server else None
        except BackupError:
            return False
        return state is not None and state.user == self.server.username and state.user_triggered

    def _holder(self) -> str:
        try:
            state = self.server.maintenance() if self.server else None
        except Alien4CloudError:
            return "by an unknown user"
        if state is None:
            return "it went off since"
        if not state.user_triggered:
            return "by Alien4Cloud itself, for its start-up migrations"
        return f"enabled by {state.user}" + (f": {state.message}" if state.message else "")

    def _kind(self) -> str:
        return "backup" if isinstance(self.run, Backup) else "restore"

    # --- progress -----------------------------------------------------------------------
    def report(self, run, *, force: bool = False) -> None:
        """Sends the run's phase and progress to Alien4Cloud's banner, at most every
        A4C_MAINTENANCE_UPDATE_SECONDS (a phase change goes at once). Never raises."""
        if not self.held or (run.phase or "").split(":")[0] in QUIET_PHASES:
            return
        text, percent = describe(run)
        now = time.monotonic()
        # a new stage goes at once; its steps ("safety backup: files") wait their turn
        phase_changed = run.phase.split(":")[0] != (self._last_phase or "").split(":")[0]
        if text == self._last_text or not (
            force
            or phase_changed
            or now - self._last_sent >= settings.A4C_MAINTENANCE_UPDATE_SECONDS
        ):
            return
        self._last_sent, self._last_text, self._last_phase = now, text, run.phase
        try:
            self.server.update_maintenance(text, percent)
        except BackupError as exc:  # the banner is a courtesy: the run goes on without it
            if not self._update_failed:
                log.warning("Alien4Cloud's maintenance banner could not be updated: %s", exc)
            self._update_failed = True

    def follow(self, runner) -> None:
        """Sends the runner's progress to the banner too, besides its own callback."""
        own = runner.on_progress

        def both(run) -> None:
            self.report(run)
            if own:
                own(run)

        runner.on_progress = both

    # --- close --------------------------------------------------------------------------
    def keep(self, why_kept: str) -> None:
        """Leaves on what open() enabled, for the operator to end once the data is right;
        the dashboard shows it in red with the command that ends it. Never raises."""
        if not self.held:
            return
        self.held = False
        note = f"Alien4Cloud was left in maintenance mode: {why_kept}"
        try:
            self.server.update_maintenance(f"a4c-backup: {self.why} failed; {why_kept}", 100)
        except BackupError:
            pass  # the banner is a courtesy; the row and the audit say it
        _write(self.run, A4CMaintenance.STUCK, note)
        _audit(self.run, Outcome.FAILED, note, self.why)

    def close(self, outcome: str) -> None:
        """Disables what open() enabled; never raises. ``outcome`` is said in the audit."""
        if not self.held:
            return
        self.held = False
        try:
            self.server.update_maintenance(f"a4c-backup: {self.why} {outcome}", 100)
        except BackupError:
            pass  # the disable below is what matters
        _release(self.run, self.server, f"{self.why} {outcome}")


def _release(run, server: alien4cloud.Server, why: str) -> bool:
    """Disables maintenance the tool enabled for ``run``; marks the row released or stuck."""
    try:
        state = server.maintenance()
        if state is not None and (state.user != server.username or not state.user_triggered):
            note = f"Maintenance is now held by {state.user or 'Alien4Cloud'}; it was left on."
            _write(run, A4CMaintenance.RELEASED, note)
            _audit(run, Outcome.INFO, note, why)
            return True
        if state is not None:
            server.disable_maintenance()
    except BackupError as exc:
        note = (
            f"Alien4Cloud stays in maintenance mode: it could not be disabled ({exc}). "
            f"Clear it with `{CLEAR_COMMAND}`."
        )
        _write(run, A4CMaintenance.STUCK, note)
        _audit(run, Outcome.FAILED, note, why)
        return False
    _write(run, A4CMaintenance.RELEASED)
    _audit(run, Outcome.SUCCEEDED, f"disabled after {why}", why)
    return True


def release_for_dead_run(run, keep: str = "") -> str:
    """Recovery's part: disables the maintenance a dead worker's run held (or, with ``keep``,
    leaves it on, saying why); a note for it."""
    if run.a4c_maintenance != A4CMaintenance.HELD:
        return ""
    kind = "backup" if isinstance(run, Backup) else "restore"
    if keep:
        note = f"Alien4Cloud was left in maintenance mode: {keep}"
        _write(run, A4CMaintenance.STUCK, note)
        _audit(run, Outcome.FAILED, note, f"{kind} whose worker died")
        return (
            f" {note} Restore a backup (it takes the maintenance over and ends it), or, once "
            f"the data is right, run `{CLEAR_COMMAND}` and restart Alien4Cloud."
        )
    try:
        server = alien4cloud.server()
    except ConfigError as exc:
        _write(run, A4CMaintenance.STUCK, f"{exc} Then run `{CLEAR_COMMAND}`.")
        return f" Alien4Cloud's maintenance mode could not be disabled: {exc}"
    if _release(run, server, f"{kind} whose worker died"):
        return " Alien4Cloud's maintenance mode, enabled for it, was disabled."
    return f" Alien4Cloud stays in maintenance mode: run `{CLEAR_COMMAND}`."


def stuck_maintenance_runs() -> list:
    """Runs whose maintenance the tool enabled and could not disable (the dashboard's red)."""
    return [
        *Backup.objects.filter(a4c_maintenance=A4CMaintenance.STUCK),
        *RestoreRun.objects.select_related("backup").filter(a4c_maintenance=A4CMaintenance.STUCK),
    ]


def end_stuck_maintenance(actor: Actor) -> str:
    """Disables the maintenance this tool's user holds and marks stuck runs released.

    Someone else's maintenance is left on: only the configured user's is disabled.
    """
    server = alien4cloud.server()
    state = server.maintenance()
    stuck = stuck_maintenance_runs()
    if state is not None and (state.user != server.username or not state.user_triggered):
        raise MaintenanceHeldElsewhere(
            f"Alien4Cloud's maintenance mode is held by {state.user or 'Alien4Cloud itself'}, "
            f"not by {server.username}: it is theirs to disable."
        )
    done = server.disable_maintenance() if state is not None else False
    for run in stuck:
        _write(run, A4CMaintenance.RELEASED, f"Disabled by {actor.name} with `{CLEAR_COMMAND}`.")
    target = ", ".join(r.name if isinstance(r, Backup) else f"restore #{r.pk}" for r in stuck)
    audit.record(
        actor,
        ACTION,
        target=target[:300],
        outcome=Outcome.SUCCEEDED,
        message="disabled by hand" if done else "was off already; stuck runs marked released",
        parameters={"why": "clearing a maintenance the tool could not disable", "runs": target},
    )
    if done:
        return f"Alien4Cloud's maintenance mode is off now ({len(stuck)} stuck run(s) cleared)."
    return f"Alien4Cloud was not in maintenance mode; {len(stuck)} stuck run(s) marked released."


def current_state() -> str:
    """One line for the plan and status pages: on by us, on by someone else, off, not used."""
    try:
        mode = alien4cloud.mode()
    except ConfigError as exc:
        return exc.message
    if mode == "off":
        return "not used (A4C_MAINTENANCE=off)"
    if not alien4cloud.configured():
        return "not configured (A4C_SERVER_URL is not set)"
    try:
        server = alien4cloud.server(attempts=1, timeout=2.0)
        state = server.maintenance()
    except BackupError as exc:
        return f"unknown: {exc}"
    if state is None:
        return "off"
    if state.user == server.username and state.user_triggered:
        return f"on, enabled by this tool ({state.message or 'no message'})"
    who = state.user if state.user_triggered else "Alien4Cloud itself"
    return f"on, enabled by {who}: it is left as it is"


# --- after a restore ------------------------------------------------------------------------


def end_of_restore(run: RestoreRun, window: MaintenanceWindow, outcome: str) -> None:
    """Maintenance off, Alien4Cloud's saved state as before the restore, the restart advice;
    ``outcome`` is the status the run is about to end with (its row says it once this is done).

    A restored maintenance index holds what was saved when its backup was taken: "on" for a
    backup taken under maintenance, which a restarted Alien4Cloud would read back and stay
    locked. Unless maintenance was on before the restore (someone else's), it is emptied.
    """
    run.refresh_from_db()
    state = RestoreState.of(run)
    if state.changed and outcome not in (
        RestoreRun.Status.SUCCEEDED,
        RestoreRun.Status.ROLLED_BACK,
    ):
        _keep_locked(run, window, state)
        return
    window.close(RestoreRun.Status(outcome).label.lower())
    if not state.changed:
        return
    notes = []
    if not window.foreign:
        for name in filter(
            alien4cloud.is_maintenance_index, state.existing_touched + state.created
        ):
            try:
                cluster = elastic.cluster()
                if cluster.indices(include=[name]):
                    cluster.delete_all_documents(name)
            except BackupError as exc:
                notes.append(
                    f"Alien4Cloud's saved maintenance state in {name} could not be cleared "
                    f"({exc}): it may start in maintenance mode; `{CLEAR_COMMAND}` ends it."
                )
    notes.append(restart_alien4cloud())
    state = dataclasses.replace(state, restart=" ".join(notes))
    RestoreRun.objects.filter(pk=run.pk).update(state=state.to_json())
    run.state = state.to_json()


UNSAFE = (
    "its data is neither the backup's nor what it was before the restore. It was not "
    "restarted either: a restart while shards recover loses them."
)


def _keep_locked(run: RestoreRun, window: MaintenanceWindow, state: RestoreState) -> None:
    """A restore that changed data and could not put it back: Alien4Cloud stays closed to its
    users and is not restarted, and the operator is told how to end it."""
    window.keep(UNSAFE)
    advice = (
        f"Alien4Cloud stays in maintenance mode and was not restarted: {UNSAFE} "
        + (
            f"Restore safety backup {run.safety_backup.name}"
            if run.safety_backup_id
            else "Restore an earlier backup"
        )
        + f" (it takes the maintenance over and ends it), or, once the data is right, run "
        f"`{CLEAR_COMMAND}` and restart Alien4Cloud."
    )
    state = dataclasses.replace(state, restart=advice)
    RestoreRun.objects.filter(pk=run.pk).update(state=state.to_json())
    run.state = state.to_json()


def restart_alien4cloud() -> str:
    """Runs A4C_RESTART_COMMAND and waits for /rest/admin/health; what to tell the operator."""
    command = settings.A4C_RESTART_COMMAND
    if not command:
        return RESTART_ADVICE
    try:
        run_hook(command, "restart")
    except BackupError as exc:
        return f"{exc} Restart Alien4Cloud by hand: its caches predate the restore."
    if not alien4cloud.configured():
        return "Alien4Cloud was restarted by A4C_RESTART_COMMAND (set A4C_SERVER_URL to await it)."
    deadline = time.monotonic() + settings.A4C_RESTART_TIMEOUT
    server = alien4cloud.anonymous(timeout=2.0)
    while True:
        try:
            if server.health().up:
                return (
                    "Alien4Cloud was restarted by A4C_RESTART_COMMAND and answers "
                    "/rest/admin/health."
                )
        except BackupError:
            pass  # still starting
        if time.monotonic() >= deadline:
            return (
                f"Alien4Cloud was restarted by A4C_RESTART_COMMAND but did not answer "
                f"/rest/admin/health within {settings.A4C_RESTART_TIMEOUT:g} s "
                "(A4C_RESTART_TIMEOUT): look at it."
            )
        time.sleep(1.0)
