"""The door to Alien4Cloud's REST API, against the stand-in (its state in a real Elasticsearch)."""

from __future__ import annotations

import pytest
import requests

from backups.alien4cloud import client as alien4cloud
from backups.errors import (
    Alien4CloudError,
    Alien4CloudSignInError,
    Alien4CloudUnreachable,
    ConfigError,
    MaintenanceHeldElsewhere,
)


def as_alice(standin) -> alien4cloud.Server:
    return alien4cloud.Server(standin.url, "alice", "pw-alice")


def test_it_signs_in_with_the_form_login_and_keeps_the_session(a4c_standin):
    server = alien4cloud_server()

    account = server.sign_in()
    server.maintenance()
    server.maintenance()

    assert account.username == "backup-admin" and account.is_admin
    logins = [c for c in a4c_standin.calls if c.path == "/login"]
    assert len(logins) == 1 and logins[0].status == 302
    assert all(c.user == "backup-admin" for c in a4c_standin.calls if "maintenance" in c.path)


def alien4cloud_server() -> alien4cloud.Server:
    return alien4cloud.server(attempts=1)


def test_it_enables_updates_reads_and_disables_maintenance_saved_in_elasticsearch(a4c_standin):
    server = alien4cloud_server()

    server.enable_maintenance()
    server.update_maintenance("a4c-backup: backing up, files 40%", 40)
    state = server.maintenance()
    saved_while_on = a4c_standin.saved_documents()
    assert server.disable_maintenance() is True

    assert state.user == "backup-admin" and state.user_triggered
    assert state.progress == 40 and state.message == "a4c-backup: backing up, files 40%"
    assert state.log[-1].at is not None
    assert saved_while_on == 1
    assert server.maintenance() is None
    assert a4c_standin.saved_documents() == 0
    assert a4c_standin.calls_to() == [
        "POST maintenance",
        "PUT maintenance",
        "GET maintenance",
        "DELETE maintenance",
        "GET maintenance",
    ]


def test_while_maintenance_is_on_other_rest_calls_get_503_but_health_answers(a4c_standin):
    server = alien4cloud_server()
    server.enable_maintenance()

    refused = server.session.get(a4c_standin.url + "/rest/latest/applications/search")
    health = server.health()
    server.disable_maintenance()
    allowed = server.session.get(a4c_standin.url + "/rest/latest/applications/search")

    assert refused.status_code == 503
    assert refused.json()["error"]["message"] == "Maintenance mode is enabled."
    assert health.up and health.status_code == 200
    assert allowed.status_code == 200


def test_the_maintenance_endpoints_answer_under_each_of_their_three_prefixes(a4c_standin):
    server = alien4cloud_server()
    server.sign_in()
    for prefix in ("/rest", "/rest/v1", "/rest/latest"):
        assert server.session.post(a4c_standin.url + prefix + "/maintenance").status_code == 201
        assert server.session.delete(a4c_standin.url + prefix + "/maintenance").status_code == 200


def test_someone_elses_maintenance_is_reported_and_left_on(a4c_standin):
    as_alice(a4c_standin).enable_maintenance()
    server = alien4cloud_server()

    with pytest.raises(MaintenanceHeldElsewhere, match="maintenance mode already"):
        server.enable_maintenance()

    assert server.maintenance().user == "alice"
    assert a4c_standin.calls[-2].status == 409


def test_a_wrong_password_is_refused_with_the_settings_to_correct(a4c_standin, settings):
    settings.A4C_SERVER_PASSWORD = "not-the-password"

    with pytest.raises(Alien4CloudSignInError) as refused:
        alien4cloud_server().maintenance()

    assert "A4C_SERVER_USERNAME" in str(refused.value)
    assert "A4C_SERVER_PASSWORD" in str(refused.value)


def test_a_user_without_the_admin_role_signs_in_but_may_not_enable_maintenance(a4c_standin):
    bob = alien4cloud_server_for("bob", "pw-bob", a4c_standin)

    account = bob.sign_in()
    with pytest.raises(Alien4CloudSignInError, match="ADMIN role"):
        bob.enable_maintenance()

    assert not account.is_admin
    assert bob.maintenance() is None


def alien4cloud_server_for(user: str, password: str, standin) -> alien4cloud.Server:
    return alien4cloud.Server(standin.url, user, password, attempts=1)


def test_unauthenticated_rest_calls_are_refused_with_code_100(a4c_standin):
    answer = requests.post(a4c_standin.url + "/rest/latest/maintenance", timeout=5)

    assert answer.status_code == 403 and answer.json()["error"]["code"] == 100


def test_it_signs_in_again_when_alien4cloud_restarted_and_forgot_the_session(a4c_standin):
    server = alien4cloud_server()
    server.enable_maintenance()

    a4c_standin.restart()
    state = server.maintenance()

    assert state is not None and state.user == "backup-admin", "read back from its index"
    assert len([c for c in a4c_standin.calls if c.path == "/login"]) == 2
    assert server.disable_maintenance()


def test_alien4cloud_down_is_unreachable_and_the_message_names_the_url_setting(a4c_standin):
    a4c_standin.stop()

    with pytest.raises(Alien4CloudUnreachable, match="A4C_SERVER_URL") as down:
        alien4cloud_server().maintenance()

    assert down.value.retryable


def test_it_tries_a_lost_connection_again_before_giving_up(a4c_standin):
    a4c_standin.stop()
    tries = alien4cloud_server_for("backup-admin", "pw-backup-admin", a4c_standin)
    tries.attempts = 3
    sent = []
    original = tries._send

    def counting(method, path, **kwargs):
        sent.append(path)
        return original(method, path, **kwargs)

    tries._send = counting
    with pytest.raises(Alien4CloudUnreachable):
        tries.maintenance()

    assert sent == ["/login", "/login", "/login"]


def test_a_maintenance_alien4cloud_enabled_itself_is_not_disabled(a4c_standin):
    a4c_standin.enable_by_itself()
    server = alien4cloud_server()

    with pytest.raises(Alien4CloudError, match="enabled it itself"):
        server.disable_maintenance()

    state = server.maintenance()
    assert state is not None and not state.user_triggered


def test_disabling_a_maintenance_that_is_off_says_it_was_off(a4c_standin):
    assert alien4cloud_server().disable_maintenance() is False


def test_the_password_can_come_from_a_file(a4c_standin, settings, tmp_path):
    secret = tmp_path / "a4c-password"
    secret.write_text("pw-backup-admin\n")
    settings.A4C_SERVER_PASSWORD = ""
    settings.A4C_SERVER_PASSWORD_FILE = str(secret)

    assert alien4cloud_server().sign_in().is_admin


def test_missing_or_wrong_settings_name_the_setting(settings, tmp_path):
    settings.A4C_SERVER_URL = "http://127.0.0.1:9"
    settings.A4C_SERVER_USERNAME = ""
    settings.A4C_SERVER_PASSWORD = ""
    settings.A4C_SERVER_PASSWORD_FILE = str(tmp_path / "missing")
    settings.A4C_SERVER_CA_CERT = str(tmp_path / "no-ca.pem")
    settings.A4C_MAINTENANCE = "sometimes"

    with pytest.raises(ConfigError) as wrong:
        alien4cloud.server()

    for setting in (
        "A4C_MAINTENANCE",
        "A4C_SERVER_USERNAME",
        "A4C_SERVER_PASSWORD_FILE",
        "A4C_SERVER_CA_CERT",
    ):
        assert setting in str(wrong.value)


def test_without_a_url_it_is_not_configured_and_asks_for_one(settings):
    settings.A4C_SERVER_URL = ""

    assert not alien4cloud.configured()
    with pytest.raises(ConfigError, match="A4C_SERVER_URL is not set"):
        alien4cloud.server()


def test_the_maintenance_index_is_recognised_under_a_prefix():
    assert alien4cloud.is_maintenance_index("maintenancemodestate")
    assert alien4cloud.is_maintenance_index("t1234-maintenancemodestate")
    assert not alien4cloud.is_maintenance_index("application")
