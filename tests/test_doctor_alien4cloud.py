"""The doctor and `manage.py check` look at Alien4Cloud: reachable, signed in, ADMIN, its state."""

from __future__ import annotations

import json

import pytest
from commands import manage
from django.core import checks as django_checks

from backups.alien4cloud import client as alien4cloud
from backups.doctor.alien4cloud import alien4cloud_check

pytestmark = pytest.mark.django_db


def deploy_check_ids() -> list[str]:
    found = django_checks.run_checks(include_deployment_checks=True, tags=["alien4cloud"])
    return [m.id for m in found]


def test_a_reachable_alien4cloud_with_an_admin_user_and_maintenance_off_is_ok(a4c_standin):
    found = alien4cloud_check()

    assert found.level == "ok", found.summary
    assert "signed in as backup-admin (ADMIN)" in found.summary
    assert found.summary.endswith("maintenance mode off")
    assert a4c_standin.calls_to() == ["GET maintenance"], "the doctor changes nothing"


def test_someone_elses_maintenance_is_a_warning_naming_who(a4c_standin):
    alien4cloud.Server(a4c_standin.url, "alice", "pw-alice").enable_maintenance()

    found = alien4cloud_check()

    assert found.level == "warning"
    assert "enabled by alice" in found.summary and "without touching it" in found.summary


def test_a_wrong_password_is_an_error_naming_the_password_setting(a4c_standin, settings):
    settings.A4C_SERVER_PASSWORD = "wrong"

    found = alien4cloud_check()

    assert found.level == "error" and "A4C_SERVER_PASSWORD" in found.summary
    assert deploy_check_ids() == ["a4c.E012"]


def test_a_user_without_the_admin_role_is_an_error(a4c_standin, settings):
    settings.A4C_SERVER_USERNAME, settings.A4C_SERVER_PASSWORD = "bob", "pw-bob"

    found = alien4cloud_check()

    assert found.level == "error" and "lacks the ADMIN role" in found.summary
    assert "A4C_SERVER_USERNAME" in found.fix


def test_alien4cloud_down_is_a_warning_with_auto_and_an_error_with_required(a4c_standin, settings):
    a4c_standin.stop()

    with_auto = alien4cloud_check()
    settings.A4C_MAINTENANCE = "required"
    with_required = alien4cloud_check()

    assert with_auto.level == "warning" and "without maintenance mode" in with_auto.summary
    assert with_required.level == "error" and "refused" in with_required.fix


def test_not_configured_is_fine_with_auto_and_an_error_with_required(settings):
    settings.A4C_SERVER_URL = ""
    settings.A4C_MAINTENANCE = "auto"
    assert alien4cloud_check().level == "ok"

    settings.A4C_MAINTENANCE = "required"
    assert alien4cloud_check().level == "error"
    assert "a4c.E011" in [m.id for m in django_checks.run_checks()]


def test_a_mode_that_is_not_one_of_the_three_is_named(settings):
    settings.A4C_MAINTENANCE = "maybe"

    assert "A4C_MAINTENANCE" in alien4cloud_check().summary
    assert "a4c.E010" in [m.id for m in django_checks.run_checks()]


def test_doctor_prints_the_alien4cloud_check(a4c_standin, capsys):
    ran = manage(capsys, "doctor", "--worker-timeout", "0.2", "--json")

    checks = {c["name"]: c for c in json.loads(ran.out)["checks"]}
    assert checks["Alien4Cloud"]["level"] == "ok", checks["Alien4Cloud"]
