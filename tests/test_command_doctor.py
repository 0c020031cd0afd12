"""manage.py doctor: prints every check with its fix; exit 1 when one fails."""

from __future__ import annotations

import json

import pytest
from commands import manage

from backups.elastic import client as elastic
from backups.management import arguments

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_file_install(a4c):
    (a4c.data_dir / "artifacts").mkdir()
    (a4c.data_dir / "artifacts" / "a.bin").write_bytes(b"a")
    return a4c


def test_doctor_exits_0_when_nothing_fails_even_with_warnings(one_file_install, capsys):
    ran = manage(capsys, "doctor", "--worker-timeout", "0.2", "--json")

    assert ran.code == 0, ran.out + ran.err
    report = json.loads(ran.out)
    assert report["ok"] is True
    levels = {c["name"]: c["level"] for c in report["checks"]}
    assert levels["Elasticsearch"] != "error" and levels["Last backup"] == "warning"


def test_doctor_exits_1_naming_the_failed_checks_and_printing_their_fix(
    one_file_install, capsys, settings, tmp_path
):
    settings.A4C_DATA_DIR = tmp_path / "moved-away"

    ran = manage(capsys, "doctor", "--worker-timeout", "0.2")

    assert ran.code == arguments.FAILED
    lines = ran.out.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("[FAIL] Data dir"))
    assert "fix: Point A4C_DATA_DIR" in lines[failed + 1]
    assert ran.err == "error: 1 check failed: Data dir\n"


@pytest.fixture
def fresh_cluster():
    elastic.cluster.cache_clear()
    yield
    elastic.cluster.cache_clear()


def test_a_broken_setting_stops_other_commands_but_doctor_reports_it(
    one_file_install, capsys, settings, fresh_cluster
):
    settings.A4C_ES_URLS = ["http://localhost:9300"]
    settings.A4C_ES_URLS_SOURCE = "the environment variable A4C_ES_URLS"

    listing = manage(capsys, "backups")
    doctor = manage(capsys, "doctor", "--worker-timeout", "0.2", "--json")

    assert listing.code == arguments.USAGE
    assert listing.err.startswith(
        "error: configuration: the environment variable A4C_ES_URLS: http://localhost:9300"
    )
    assert listing.err.count("\n") == 1
    assert doctor.code == arguments.FAILED
    checks = {c["name"]: c for c in json.loads(doctor.out)["checks"]}
    assert checks["Settings"]["level"] == "error" and "REST port" in checks["Settings"]["summary"]
