"""HTTPS behind a proxy: `manage.py check --deploy` is clean in HTTPS mode, and each setting
of the network part is named when it is wrong."""

from __future__ import annotations

import secrets
import subprocess
import sys

from django.conf import settings as django_settings


def manage(tmp_path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    data_dir = tmp_path / "a4c-data"
    data_dir.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "A4C_VAR_DIR": str(tmp_path / "var"),
        "A4C_LEGACY_CONFIG": str(tmp_path / "absent.yml"),
        "A4C_DATA_DIR": str(data_dir),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "A4C_ALLOWED_HOSTS": "backup.example.org",
        **env_extra,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_deploy_check_finds_nothing_to_say_in_https_mode(tmp_path):
    assert manage(tmp_path, "migrate", "-v0").returncode == 0  # the deploy checks read it
    done = manage(tmp_path, "check", "--deploy", A4C_HTTPS="true", A4C_TRUSTED_PROXY="127.0.0.1")

    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "security.W" not in out
    assert "System check identified no issues" in out


def test_without_https_mode_the_deploy_check_names_what_https_mode_turns_on(tmp_path):
    assert manage(tmp_path, "migrate", "-v0").returncode == 0
    out = manage(tmp_path, "check", "--deploy").stderr

    for warning in ("W004", "W008", "W012", "W016"):  # HSTS, redirect, both cookies
        assert f"security.{warning}" in out


def test_hsts_for_subdomains_is_the_operator_s_choice(tmp_path):
    done = manage(
        tmp_path,
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_PROXY_SSL_HEADER)",
        A4C_HTTPS="true",
        A4C_HSTS_SECONDS="600",
        A4C_HSTS_INCLUDE_SUBDOMAINS="true",
    )

    assert done.stdout.split("\n")[0] == "600 True ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_each_unreadable_network_setting_is_named_with_what_to_write(tmp_path):
    done = manage(
        tmp_path,
        "check",
        A4C_HTTPS="ture",
        A4C_HSTS_SECONDS="a year",
        A4C_LOGIN_FAILURE_LIMIT="0",
        A4C_LOGIN_COOLOFF_MINUTES="soon",
        A4C_SESSION_IDLE_MINUTES="-5",
        A4C_SESSION_MAX_HOURS="all day",
        A4C_TRUSTED_PROXY="proxy.example.org",
    )

    out = done.stderr
    assert done.returncode != 0
    assert "A4C_HTTPS is 'ture': write true or false" in out
    assert "A4C_HSTS_SECONDS is 'a year'" in out
    assert "A4C_LOGIN_FAILURE_LIMIT is '0': a whole number of failures, 1 or more" in out
    assert "A4C_LOGIN_COOLOFF_MINUTES is 'soon'" in out
    assert "A4C_SESSION_IDLE_MINUTES is '-5'" in out
    assert "A4C_SESSION_MAX_HOURS is 'all day'" in out
    assert "A4C_TRUSTED_PROXY is 'proxy.example.org': write the proxy's IP address" in out


def test_https_mode_without_a_trusted_proxy_is_named_before_it_loops(tmp_path):
    out = manage(tmp_path, "check", A4C_HTTPS="true").stderr

    assert "A4C_HTTPS is on but A4C_TRUSTED_PROXY is empty" in out


def test_each_wrong_directory_setting_is_named(tmp_path):
    done = manage(
        tmp_path,
        "check",
        A4C_LDAP_URL="http://ldap.example.org",
        A4C_LDAP_USER_DN_TEMPLATE="uid=someone,ou=people,dc=example,dc=org",
        A4C_LDAP_GROUP_TYPE="groupOfUniqueNames",
        A4C_LDAP_GROUP_OPERATORS="operators",
        A4C_LDAP_CA_CERT=str(tmp_path / "no-such-ca.pem"),
        A4C_LDAP_BIND_PASSWORD_FILE=str(tmp_path / "no-such-password"),
    )

    out = done.stderr
    assert done.returncode != 0
    assert "A4C_LDAP_URL is 'http://ldap.example.org': write ldap://" in out
    assert "A4C_LDAP_USER_DN_TEMPLATE is 'uid=someone,ou=people,dc=example,dc=org': it must " in out
    assert "A4C_LDAP_GROUP_TYPE is 'groupOfUniqueNames': write groupOfNames or posixGroup" in out
    assert "A4C_LDAP_GROUP_OPERATORS is 'operators', which is not a DN" in out
    assert "A4C_LDAP_GROUP_SEARCH_BASE is empty" in out
    assert "A4C_LDAP_CA_CERT names" in out
    assert "A4C_LDAP_BIND_PASSWORD_FILE names" in out


def test_directory_settings_without_a_url_are_named_as_unused(tmp_path):
    out = manage(tmp_path, "check", A4C_LDAP_USER_SEARCH_BASE="ou=people,dc=a4c,dc=test").stderr

    assert "A4C_LDAP_USER_SEARCH_BASE set but A4C_LDAP_URL is empty" in out
