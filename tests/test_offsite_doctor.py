"""The off-site settings checked (a4c.E026-E028) and the doctor's probe of the real bucket."""

from __future__ import annotations

import pytest
from pyrage import x25519

from backups.doctor.checks import run_checks
from backups.doctor.offsite import NAME, PROBE_PREFIX, offsite_check
from backups.doctor.settings_checks import check_offsite, check_settings


@pytest.fixture
def recipients(settings):
    settings.A4C_EXPORT_RECIPIENTS = [str(x25519.Identity.generate().to_public())]


def offsite_errors():
    return [p for p in check_settings() if p.id in ("a4c.E026", "a4c.E027")]


def test_no_url_means_no_check_and_no_problem(settings):
    settings.A4C_OFFSITE_URL = ""
    assert offsite_errors() == []
    found = offsite_check()
    assert found.ok and "not configured" in found.summary
    assert NAME not in [c.name for c in run_checks(lock=False)]


def test_a_malformed_url_is_a_settings_error_naming_it(settings, recipients):
    settings.A4C_OFFSITE_URL = "https://bucket.example.org/backups"
    (problem,) = offsite_errors()
    assert problem.id == "a4c.E026"
    assert "A4C_OFFSITE_URL='https://bucket.example.org/backups' is not an s3:// URL" in (
        problem.msg
    )
    assert "s3://BUCKET/PREFIX" in problem.msg


def test_an_unreadable_secret_file_is_a_settings_error(settings, recipients, tmp_path):
    settings.A4C_OFFSITE_URL = "s3://acme-backups/a4c"
    settings.A4C_OFFSITE_ACCESS_KEY = "AKIAEXAMPLE"
    settings.A4C_OFFSITE_SECRET_KEY_FILE = str(tmp_path / "missing")
    (problem,) = offsite_errors()
    assert problem.id == "a4c.E026" and "A4C_OFFSITE_SECRET_KEY_FILE names" in problem.msg


def test_copies_without_recipients_are_named_as_refused(settings):
    settings.A4C_OFFSITE_URL = "s3://acme-backups/a4c"
    settings.A4C_EXPORT_RECIPIENTS = []
    (problem,) = offsite_errors()
    assert problem.id == "a4c.E027"
    assert "A4C_EXPORT_RECIPIENTS is empty" in problem.msg and "never written in clear" in (
        problem.msg
    )


def test_the_doctor_probes_the_real_bucket_and_leaves_nothing(offsite, recipients):
    found = offsite_check()
    assert found.ok, found.summary
    assert "the credentials write, list and read" in found.summary
    assert list(offsite.list(PROBE_PREFIX)) == []
    assert check_offsite() == []
    (listed,) = [c for c in run_checks(lock=False) if c.name == NAME]
    assert listed.ok


def test_a_wrong_secret_is_named_by_the_doctor(offsite, recipients, settings):
    settings.A4C_OFFSITE_SECRET_KEY = "wrong"
    found = offsite_check()
    assert not found.ok and found.level == "error"
    assert "A4C_OFFSITE_SECRET_KEY" in found.summary
    (problem,) = check_offsite()
    assert problem.id == "a4c.E028"


def test_a_missing_bucket_is_named_by_the_doctor(offsite, recipients, settings):
    settings.A4C_OFFSITE_URL = "s3://a4c-not-created-here/x"
    found = offsite_check()
    assert not found.ok
    assert "a4c-not-created-here does not exist" in found.summary
    assert "A4C_OFFSITE_URL" in found.fix


def test_a_server_that_does_not_answer_is_named_by_the_doctor(offsite, recipients, settings):
    settings.A4C_OFFSITE_ENDPOINT_URL = "http://127.0.0.1:9"
    found = offsite_check()
    assert not found.ok and "did not answer" in found.summary
    assert "A4C_OFFSITE_ENDPOINT_URL" in found.summary


def test_a_malformed_segment_size_is_a_settings_error(settings, recipients):
    settings.A4C_OFFSITE_URL = "s3://acme-backups/a4c"
    settings.A4C_OFFSITE_SEGMENT_SIZE = "huge"
    (problem,) = offsite_errors()
    assert problem.id == "a4c.E026" and "A4C_OFFSITE_SEGMENT_SIZE is 'huge'" in problem.msg
