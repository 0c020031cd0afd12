"""The real Alien4Cloud 3.7.0 answers as the client and the content helpers expect."""

from __future__ import annotations

import io
import secrets
import zipfile

import pytest
import requests
from real_alien4cloud import real_a4c  # noqa: F401 - the fixture

from backups.alien4cloud import content
from backups.alien4cloud.client import MAINTENANCE_PATH


def test_it_is_healthy_without_signing_in(real_a4c):  # noqa: F811
    response = requests.get(real_a4c.url + "/rest/admin/health", timeout=10)

    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


def test_admin_signs_in_with_the_admin_role(real_a4c):  # noqa: F811
    account = real_a4c.server().sign_in()

    assert account.username == "admin"
    assert account.is_admin


def test_maintenance_goes_on_and_off(real_a4c):  # noqa: F811
    server = real_a4c.server()
    server.sign_in()

    status, _, error = server._rest("POST", MAINTENANCE_PATH, retry=False)
    assert (status, error) == (201, None)
    try:
        again, _, error = server._rest("POST", MAINTENANCE_PATH, retry=False)
        assert again == 409 and error["code"] == 502
        status, _, error = server._rest(
            "PUT", MAINTENANCE_PATH, json={"message": "restoring", "progressPercentage": 40}
        )
        assert (status, error) == (201, None)  # 201, not the 200 the reference implied
        blocked, _, error = server._rest("POST", "/rest/latest/users/search", json={})
        assert blocked == 503 and error["message"] == "Maintenance mode is enabled."

        state = server.maintenance()
        assert state.user == "admin" and state.user_triggered and state.progress == 40
        assert state.message == "restoring"
    finally:
        status, _, error = server._rest("DELETE", MAINTENANCE_PATH)
    assert (status, error) == (200, None)
    assert server.maintenance() is None
    status, _, error = server._rest("DELETE", MAINTENANCE_PATH)
    assert status == 404 and error["code"] == 504


def test_content_helpers_create_and_read_a_user_group_csar_and_application(real_a4c):  # noqa: F811
    server = real_a4c.server()
    tag = secrets.token_hex(3)
    username, group_name, csar_name, app_name = (
        f"user-{tag}",
        f"group-{tag}",
        f"csar-{tag}",
        f"App {tag}",
    )

    content.create_user(server, username, "pw-" + tag, ["APPLICATIONS_MANAGER"])
    content.create_group(server, group_name, [username], ["COMPONENTS_BROWSER"])
    uploaded = content.upload_csar(server, content.build_csar(csar_name, "1.2.0"))
    app_id = content.create_application(server, app_name)
    try:
        state = content.snapshot_state(server)

        assert content.User(username, ("APPLICATIONS_MANAGER",), (group_name,)) in state.users
        assert content.Group(group_name, (username,), ("COMPONENTS_BROWSER",)) in state.groups
        assert uploaded.name == csar_name and uploaded.version == "1.2.0"
        assert len(uploaded.hash) == 40 and uploaded in state.csars
        assert content.Application(app_id, app_name) in state.applications
        stored = real_a4c.data_dir / "csar" / csar_name / "1.2.0"
        assert (stored / f"{csar_name}-1.2.0.csar").is_file()
        assert (stored / "expanded" / f"{csar_name}.yml").is_file()

        # Idempotent: the same calls again change nothing.
        content.create_user(server, username, "pw-" + tag, ["APPLICATIONS_MANAGER"])
        content.create_group(server, group_name, [username])
        assert content.upload_csar(server, content.build_csar(csar_name, "1.2.0")) == uploaded
        assert content.create_application(server, app_name) == app_id
        assert content.snapshot_state(server) == state
    finally:
        content.delete_application(server, app_id)
        content.delete_csar(server, csar_name, "1.2.0")
        content.delete_group(server, group_name)
        content.delete_user(server, username)

    after = content.snapshot_state(server)
    assert all(u.username != username for u in after.users)
    assert all(g.name != group_name for g in after.groups)
    assert uploaded not in after.csars
    assert content.application(server, app_id) is None


def test_a_csar_that_does_not_parse_is_refused_though_alien4cloud_answers_200(real_a4c):  # noqa: F811
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "broken.yml",
            "tosca_definitions_version: alien_dsl_2_0_0\n"
            "node_types:\n  a4c.test.Broken:\n    derived_from: no.such.Type\n",
        )

    with pytest.raises(content.ContentError, match="200: error 200") as refused:
        content.upload_csar(real_a4c.server(), buffer.getvalue(), "broken.csar")

    assert "TYPE_NOT_FOUND" in refused.value.detail
