"""Settings: embedded defaults, the original config.yml, and checks that name the wrong setting."""

import subprocess
import sys
import textwrap

from django.conf import settings as django_settings

from a4c_backup.legacy_config import addresses_to_urls, read_legacy_config
from backups.doctor.settings_checks import check_settings


def test_the_original_config_yml_is_read_with_its_dotted_keys(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        textwrap.dedent("""
        elasticsearch:
        # Name of your elasticsearch cluster
          cluster_name: alien4cloud
          addresses: localhost:9200,129.185.67.26:9201
        backup.files_dir: /opt/alien4cloud/backups/files
        alien4cloud.dir: /opt/alien4cloud/data
    """)
    )

    config = read_legacy_config(path)

    assert config.cluster_name == "alien4cloud"
    assert config.addresses == ["http://localhost:9200", "http://129.185.67.26:9201"]
    assert config.files_dir == "/opt/alien4cloud/backups/files"
    assert config.alien4cloud_dir == "/opt/alien4cloud/data"


def test_an_address_without_a_port_gets_the_rest_port():
    assert addresses_to_urls("es1, https://es2:9443") == ["http://es1:9200", "https://es2:9443"]


def run_check_in_a_fresh_process(tmp_path, env_extra: dict, config_yml: str | None = None) -> str:
    env = {"PATH": "/usr/bin:/bin", "A4C_VAR_DIR": str(tmp_path / "var"), "HOME": str(tmp_path)}
    if config_yml is not None:
        (tmp_path / "config.yml").write_text(config_yml)
        env["A4C_LEGACY_CONFIG"] = str(tmp_path / "config.yml")
    else:
        env["A4C_LEGACY_CONFIG"] = str(tmp_path / "absent.yml")
    env.update(env_extra)
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def test_a_9300_address_in_config_yml_is_refused_with_one_sentence_naming_the_key(tmp_path):
    out = run_check_in_a_fresh_process(
        tmp_path, {}, "elasticsearch:\n  cluster_name: a4c\n  addresses: localhost:9300\n"
    )

    assert "elasticsearch.addresses in" in out and "9300" in out and "REST port" in out


def test_the_environment_wins_over_config_yml(tmp_path):
    out = run_check_in_a_fresh_process(
        tmp_path,
        {"A4C_ES_URLS": "http://127.0.0.1:9200"},
        "elasticsearch:\n  addresses: localhost:9300\n",
    )

    assert "9300" not in out


def test_a_data_dir_that_does_not_exist_is_named(tmp_path):
    out = run_check_in_a_fresh_process(tmp_path, {"A4C_DATA_DIR": "/no/such/a4c/data"})

    assert "/no/such/a4c/data does not exist (A4C_DATA_DIR" in out


def test_the_checks_pass_on_a_sane_configuration(settings, tmp_path):
    settings.A4C_DATA_DIR = tmp_path
    settings.A4C_BACKUP_DIR = tmp_path / "storage"

    assert check_settings() == []


def test_a_bandwidth_that_is_not_bytes_per_second_is_named_with_examples(settings, tmp_path):
    settings.A4C_DATA_DIR = tmp_path
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_FILE_BANDWIDTH = "fast"

    (problem,) = check_settings()

    assert problem.id == "a4c.E009"
    assert "A4C_FILE_BANDWIDTH is 'fast'" in problem.msg and "50M" in problem.msg


def test_a_storage_lease_too_short_to_outlive_its_renewals_is_named(settings, tmp_path):
    settings.A4C_DATA_DIR = tmp_path
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_STORAGE_LEASE_SECONDS = 10

    (problem,) = check_settings()

    assert problem.id == "a4c.E025"
    assert "A4C_STORAGE_LEASE_SECONDS is 10: give at least 90 seconds" in problem.msg
