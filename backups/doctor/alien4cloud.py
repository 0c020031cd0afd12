"""The doctor's look at Alien4Cloud: reachable, signed in, ADMIN, and its maintenance mode now.

Asked by ``manage.py doctor``, the dashboard and ``manage.py check --deploy``; quick (one try,
a two-second timeout) and it changes nothing in Alien4Cloud.
"""

from __future__ import annotations

from backups.alien4cloud import client as alien4cloud
from backups.doctor.result import NETWORK_TIMEOUT, Check
from backups.errors import Alien4CloudSignInError, Alien4CloudUnreachable, BackupError
from backups.operations.maintenance_mode import CLEAR_COMMAND, stuck_maintenance_runs

NAME = "Alien4Cloud"


def alien4cloud_check() -> Check:
    stuck = stuck_maintenance_runs()
    if stuck:
        first = stuck[0]
        return Check(
            NAME,
            False,
            f"Alien4Cloud was left in maintenance mode by this tool: {first.a4c_maintenance_note}"
            + (f" ({len(stuck)} runs)" if len(stuck) > 1 else ""),
            f"Run `{CLEAR_COMMAND}` once Alien4Cloud answers.",
            "error",
        )
    try:
        mode = alien4cloud.mode()
    except BackupError as exc:
        fix = "Set A4C_MAINTENANCE to off, auto or required."
        return Check(NAME, False, exc.message, fix, "error")
    return settings_check(mode) or server_check(mode)


def settings_check(mode: str) -> Check | None:
    """The verdict the settings alone give (off, not configured, wrong), or None."""
    if mode == "off":
        return Check(
            NAME, True, "A4C_MAINTENANCE=off: backups and restores never touch Alien4Cloud"
        )
    if not alien4cloud.configured():
        summary = "not configured (A4C_SERVER_URL is not set)"
        fix = (
            "Set A4C_SERVER_URL, A4C_SERVER_USERNAME and A4C_SERVER_PASSWORD so that backups "
            "and restores put Alien4Cloud in maintenance mode (README, 'Alien4Cloud "
            "maintenance mode')."
        )
        if mode == "required":
            return Check(NAME, False, summary + ", but A4C_MAINTENANCE=required", fix, "error")
        return Check(NAME, True, summary + ": backups run without maintenance mode", fix)
    problems = alien4cloud.settings_problems()
    if problems:
        return Check(NAME, False, " ".join(problems), "Correct the settings named.", "error")
    return None


def server_check(mode: str) -> Check:
    """Alien4Cloud asked: does it answer, sign the tool's user in as ADMIN, and whose is its
    maintenance mode now."""
    server = alien4cloud.server(attempts=1, timeout=NETWORK_TIMEOUT)
    try:
        account = server.sign_in()
        state = server.maintenance()
    except Alien4CloudUnreachable as exc:
        if mode == "required":
            return Check(
                NAME,
                False,
                exc.message,
                "Start Alien4Cloud: with A4C_MAINTENANCE=required, backups and restores are "
                "refused while it does not answer.",
                "error",
            )
        return Check(
            NAME,
            False,
            exc.message + " Backups run without maintenance mode meanwhile (A4C_MAINTENANCE=auto).",
            "Start Alien4Cloud, or correct A4C_SERVER_URL.",
            "warning",
        )
    except Alien4CloudSignInError as exc:
        return Check(NAME, False, exc.message, "Correct the settings the message names.", "error")
    if not account.is_admin:
        return Check(
            NAME,
            False,
            f"{account.username} signs in at {server.url} but lacks the ADMIN role "
            f"(roles: {', '.join(account.roles) or 'none'})",
            "Give that user the ADMIN role in Alien4Cloud, or set A4C_SERVER_USERNAME to an "
            "administrator.",
            "error",
        )
    where = f"{server.url}, signed in as {account.username} (ADMIN), A4C_MAINTENANCE={mode}"
    return maintenance_check(where, account, state, mode)


def maintenance_check(where: str, account, state, mode: str) -> Check:
    """Alien4Cloud's maintenance mode now: off, the tool's own, or someone else's."""
    if state is None:
        return Check(NAME, True, f"{where}; maintenance mode off")
    if state.user == account.username and state.user_triggered:
        # The run rows say whether a running operation holds it (see the dashboard's warning).
        return Check(NAME, True, f"{where}; maintenance mode on, enabled by this tool's user")
    who = state.user if state.user_triggered else "Alien4Cloud itself (start-up migrations)"
    follow = (
        "backups and restores are refused until it is off"
        if mode == "required"
        else "backups and restores run without touching it"
    )
    return Check(
        NAME,
        False,
        f"{where}; maintenance mode on, enabled by {who}: {follow}",
        "Ask whoever enabled it to finish; this tool never disables someone else's maintenance.",
        "warning",
    )
