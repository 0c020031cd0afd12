"""Alien4Cloud's maintenance mode around one run (operations/maintenance_mode.py), against the
stand-in: opening, the banner's progress, closing, someone else's maintenance, a stuck one."""

from __future__ import annotations

import pytest
from commands import manage
from django.urls import reverse
from people import member

from backups.alien4cloud import client as alien4cloud
from backups.errors import Alien4CloudSignInError, Alien4CloudUnreachable, MaintenanceHeldElsewhere
from backups.models import A4CMaintenance, AuditEvent, Backup
from backups.operations import maintenance_mode
from backups.operations.maintenance_mode import MaintenanceWindow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(cli_actor) -> Backup:
    return Backup.objects.create(
        name="nightly", actor=cli_actor.name, source=cli_actor.source, status="running"
    )


def row(run) -> Backup:
    run.refresh_from_db()
    return run


def alice(standin) -> alien4cloud.Server:
    return alien4cloud.Server(standin.url, "alice", "pw-alice")


def test_a_window_enables_maintenance_shows_progress_and_disables_it(a4c_standin, run):
    window = MaintenanceWindow(run, "backup nightly")

    window.open()
    held = row(run).a4c_maintenance
    run.phase, run.percent = "files", 40
    window.report(run)
    banner = alien4cloud.server().maintenance()
    window.close("succeeded")

    assert held == A4CMaintenance.HELD
    assert banner.progress == 40 and banner.message == "a4c-backup: backing up, files 40%"
    assert row(run).a4c_maintenance == A4CMaintenance.RELEASED
    assert alien4cloud.server().maintenance() is None
    assert a4c_standin.calls_to() == [
        "POST maintenance",
        "PUT maintenance",  # starting
        "PUT maintenance",  # files 40%
        "GET maintenance",  # the test's look at the banner
        "PUT maintenance",  # the end
        "GET maintenance",  # still ours?
        "DELETE maintenance",
        "GET maintenance",
    ]
    events = AuditEvent.objects.filter(action="a4c.maintenance").order_by("id")
    assert [(e.actor, e.outcome) for e in events] == [
        (run.actor, "succeeded"),
        (run.actor, "succeeded"),
    ]
    assert events[0].parameters["why"] == "backup nightly"


def test_progress_updates_are_throttled_within_a_phase(a4c_standin, run, settings):
    settings.A4C_MAINTENANCE_UPDATE_SECONDS = 3600
    window = MaintenanceWindow(run, "backup nightly")
    window.open()
    run.phase, run.files_total = "files", 100
    for done in range(100):
        run.files_done = done
        window.report(run)
    run.phase = "post-command"
    window.report(run)
    window.close("succeeded")

    puts = a4c_standin.calls_to().count("PUT maintenance")
    assert puts == 4, "open, the files phase once, the next phase at once, the end"


def test_someone_elses_maintenance_is_left_on_with_auto(a4c_standin, run):
    alice(a4c_standin).enable_maintenance()
    window = MaintenanceWindow(run, "backup nightly")

    window.open()
    window.report(run)
    window.close("succeeded")

    assert row(run).a4c_maintenance == A4CMaintenance.FOREIGN
    assert "enabled by alice" in row(run).a4c_maintenance_note
    assert window.on and not window.held
    assert alien4cloud.server().maintenance().user == "alice"
    assert "DELETE maintenance" not in a4c_standin.calls_to()
    assert "PUT maintenance" not in a4c_standin.calls_to()


def test_someone_elses_maintenance_refuses_the_run_with_required(a4c_standin, run, settings):
    settings.A4C_MAINTENANCE = "required"
    alice(a4c_standin).enable_maintenance()

    with pytest.raises(MaintenanceHeldElsewhere, match="A4C_MAINTENANCE=required"):
        MaintenanceWindow(run, "backup nightly").open()

    assert alien4cloud.server().maintenance().user == "alice"


def test_alien4cloud_down_runs_without_maintenance_with_auto(a4c_standin, run):
    a4c_standin.stop()

    MaintenanceWindow(run, "backup nightly").open()

    assert row(run).a4c_maintenance == A4CMaintenance.UNAVAILABLE
    assert "A4C_SERVER_URL" in row(run).a4c_maintenance_note


def test_alien4cloud_down_refuses_the_run_with_required(a4c_standin, run, settings):
    settings.A4C_MAINTENANCE = "required"
    a4c_standin.stop()

    with pytest.raises(Alien4CloudUnreachable, match="A4C_MAINTENANCE=required"):
        MaintenanceWindow(run, "backup nightly").open()


def test_a_wrong_password_runs_without_with_auto_and_is_refused_with_required(
    a4c_standin, run, settings
):
    settings.A4C_SERVER_PASSWORD = "wrong"
    MaintenanceWindow(run, "backup nightly").open()
    assert row(run).a4c_maintenance == A4CMaintenance.UNAVAILABLE
    assert "A4C_SERVER_PASSWORD" in row(run).a4c_maintenance_note

    settings.A4C_MAINTENANCE = "required"
    with pytest.raises(Alien4CloudSignInError, match="A4C_SERVER_PASSWORD"):
        MaintenanceWindow(run, "backup nightly").open()


def test_off_never_calls_alien4cloud(a4c_standin, run, settings):
    settings.A4C_MAINTENANCE = "off"

    MaintenanceWindow(run, "backup nightly").open()

    assert a4c_standin.calls == []
    assert row(run).a4c_maintenance == A4CMaintenance.NOT_USED


def test_a_maintenance_that_cannot_be_disabled_is_stuck_until_the_command_clears_it(
    a4c_standin, run, capsys
):
    window = MaintenanceWindow(run, "backup nightly")
    window.open()
    a4c_standin.stop()

    window.close("succeeded")

    assert row(run).a4c_maintenance == A4CMaintenance.STUCK
    assert maintenance_mode.CLEAR_COMMAND in row(run).a4c_maintenance_note
    assert maintenance_mode.stuck_maintenance_runs() == [run]
    status = manage(capsys, "a4c_maintenance")
    assert status.code == 1 and "stuck: backup nightly" in status.out

    a4c_standin.start()
    cleared = manage(capsys, "a4c_maintenance", "off")

    assert cleared.code == 0 and "off now" in cleared.out, cleared.err
    assert alien4cloud.server().maintenance() is None
    assert row(run).a4c_maintenance == A4CMaintenance.RELEASED
    assert maintenance_mode.stuck_maintenance_runs() == []


def test_the_clearing_command_never_disables_someone_elses_maintenance(a4c_standin, capsys):
    alice(a4c_standin).enable_maintenance()

    refused = manage(capsys, "a4c_maintenance", "off")

    assert refused.code == 3 and "held by alice" in refused.err
    assert alien4cloud.server().maintenance().user == "alice"


def test_recovery_disables_what_a_dead_run_held_and_only_that(a4c_standin, run, cli_actor):
    MaintenanceWindow(run, "backup nightly").open()  # and the worker dies: nobody closes it
    other = Backup.objects.create(name="other", actor=cli_actor.name, status="running")

    note = maintenance_mode.release_for_dead_run(row(run))
    nothing = maintenance_mode.release_for_dead_run(other)

    assert "was disabled" in note and nothing == ""
    assert alien4cloud.server().maintenance() is None
    assert row(run).a4c_maintenance == A4CMaintenance.RELEASED


def test_recovery_leaves_a_maintenance_someone_else_took_since(a4c_standin, run):
    MaintenanceWindow(run, "backup nightly").open()
    alien4cloud.server().disable_maintenance()
    alice(a4c_standin).enable_maintenance()

    maintenance_mode.release_for_dead_run(row(run))

    assert alien4cloud.server().maintenance().user == "alice"
    assert row(run).a4c_maintenance == A4CMaintenance.RELEASED


def test_the_current_state_names_who_holds_it(a4c_standin, settings):
    assert maintenance_mode.current_state() == "off"
    alice(a4c_standin).enable_maintenance()
    assert "enabled by alice" in maintenance_mode.current_state()
    settings.A4C_SERVER_URL = ""
    assert maintenance_mode.current_state().startswith("not configured")


def test_the_dashboard_and_the_backups_page_show_a_stuck_maintenance_in_red(
    a4c_standin, run, client
):
    client.force_login(member("rita", "restorers"))
    window = MaintenanceWindow(run, "backup nightly")
    window.open()
    a4c_standin.stop()
    window.close("succeeded")

    dashboard = client.get(reverse("backups:dashboard")).content.decode()
    page = client.get(reverse("backups:backup_detail", args=[run.pk])).content.decode()

    assert 'class="card card-bad a4c-stuck"' in dashboard
    assert maintenance_mode.CLEAR_COMMAND in dashboard
    assert 'data-a4c-maintenance="stuck"' in page and "msg-error" in page
