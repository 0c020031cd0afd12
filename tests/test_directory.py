"""Signing in against a real directory: slapd started by scripts/ldap.sh on a loopback port,
with its test tree (alice in viewers, oscar in operators, rita in restorers, sam in admins, nora
in no group). Each group gives its role, re-read at every sign-in; local accounts keep working;
a wrong bind password is named by the checks."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys

import ldap
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import checks
from django.test import Client
from people import ROLES, member

from a4c_backup.ldap_config import ldap_settings
from backups.doctor.network import directory_check
from backups.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

SUFFIX = "dc=a4c,dc=test"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{SUFFIX}", "admin-secret"  # scripts/ldap.sh's


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def slapd(tmp_path):
    """A fresh test directory; yields the console's settings for it (`ldap.sh env`)."""
    env = {
        **os.environ,
        "A4C_VAR_DIR": str(tmp_path / "var"),
        "A4C_LDAP_PORT": str(free_port()),
        "A4C_VENV": sys.prefix,
    }

    def ldap_sh(action: str) -> str:
        done = subprocess.run(
            ["bash", "scripts/ldap.sh", action],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    ldap_sh("start")
    values = dict(
        (name, shlex.split(value)[0])
        for name, value in (line.split("=", 1) for line in ldap_sh("env").splitlines())
    )
    yield values
    ldap_sh("stop")


def use_directory(settings, values: dict) -> None:
    """What settings.py does when A4C_LDAP_URL is set, for values given after start-up."""
    names = {
        "A4C_LDAP_URL": "",
        "A4C_LDAP_BIND_DN": "",
        "A4C_LDAP_BIND_PASSWORD": "",
        "A4C_LDAP_BIND_PASSWORD_FILE": "",
        "A4C_LDAP_USER_DN_TEMPLATE": "",
        "A4C_LDAP_USER_SEARCH_BASE": "",
        "A4C_LDAP_USER_FILTER": "(uid=%(user)s)",
        "A4C_LDAP_GROUP_SEARCH_BASE": "",
        "A4C_LDAP_GROUP_TYPE": "groupOfNames",
        "A4C_LDAP_GROUP_SUPERUSERS": "",
        "A4C_LDAP_CA_CERT": "",
    }
    resolved = {name: values.get(name, default) for name, default in names.items()}
    resolved |= {"A4C_LDAP_START_TLS": False, "A4C_LDAP_TIMEOUT": 5.0}
    for name, value in resolved.items():
        setattr(settings, name, value)
    settings.A4C_LDAP_ROLE_GROUPS = {
        role: values.get(f"A4C_LDAP_GROUP_{role.upper()}", "")
        for role in ("viewers", "operators", "restorers")
    }
    for name, value in ldap_settings(resolved).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "backups.web.directory.DirectoryBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]


@pytest.fixture
def directory(settings, slapd):
    use_directory(settings, slapd)
    return slapd


@pytest.fixture(autouse=True)
def role_groups():
    """The roles of migration 0002, made again after an earlier test's flush."""
    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="backups", codename__in=codenames)
        )


def sign_in(name: str, password: str | None = None) -> tuple[Client, int]:
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": name, "password": password or f"pw-{name}"}
    )
    return client, response.status_code


def roles(name: str) -> set[str]:
    user = get_user_model().objects.get(username=name)
    return set(user.groups.values_list("name", flat=True))


def as_directory_admin(change) -> None:
    connection = ldap.initialize(django_settings.A4C_LDAP_URL)
    connection.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    try:
        change(connection)
    finally:
        connection.unbind_s()


def test_each_directory_group_gives_its_role_at_sign_in(directory):
    for name, role in [("alice", "viewers"), ("oscar", "operators"), ("rita", "restorers")]:
        client, status = sign_in(name)

        assert status == 302, f"{name} could not sign in"
        assert roles(name) == {role}
        assert client.get("/backups/").status_code == 200

    sam = get_user_model().objects.get(username="sam") if sign_in("sam")[1] == 302 else None
    assert sam is not None and sam.is_superuser and sam.is_staff and roles("sam") == set()
    assert sam.email == "sam@a4c.test" and sam.first_name == "Sam"


def test_a_person_in_no_directory_group_signs_in_but_may_see_nothing(directory):
    client, status = sign_in("nora")

    assert status == 302 and roles("nora") == set()
    assert client.get("/backups/").status_code == 403


def test_a_person_moved_to_another_group_has_the_new_role_at_the_next_sign_in(directory):
    sign_in("rita")
    assert roles("rita") == {"restorers"}
    rita = f"uid=rita,ou=people,{SUFFIX}".encode()

    def move(connection):
        connection.modify_s(
            f"cn=restorers,ou=groups,{SUFFIX}", [(ldap.MOD_DELETE, "member", [rita])]
        )
        connection.modify_s(f"cn=viewers,ou=groups,{SUFFIX}", [(ldap.MOD_ADD, "member", [rita])])

    as_directory_admin(move)
    client, status = sign_in("rita")

    assert status == 302 and roles("rita") == {"viewers"}
    assert client.get("/restore/").status_code == 403
    changes = AuditEvent.objects.filter(action="auth.roles_changed", target="rita")
    event = changes.order_by("id").last()
    assert (
        event.message == "From the directory at sign-in: added to viewers; removed from restorers."
    )


def test_a_person_removed_from_every_group_loses_the_role(directory):
    sign_in("oscar")
    oscar = f"uid=oscar,ou=people,{SUFFIX}".encode()
    as_directory_admin(
        lambda c: c.modify_s(
            f"cn=operators,ou=groups,{SUFFIX}", [(ldap.MOD_DELETE, "member", [oscar])]
        )
    )

    client, _ = sign_in("oscar")

    assert roles("oscar") == set()
    assert client.get("/backups/").status_code == 403


def test_a_wrong_directory_password_is_refused_and_counted(directory):
    client, status = sign_in("alice", "not-hers")

    assert status == 200  # the sign-in form again
    assert client.get("/backups/").status_code == 302
    assert AuditEvent.objects.filter(action="auth.login_failed", target="alice").exists()


def test_local_accounts_keep_working_beside_the_directory(directory):
    member("vic", "viewers")

    client, status = sign_in("vic", "pw-vic-12345")

    assert status == 302 and client.get("/backups/").status_code == 200
    assert roles("vic") == {"viewers"}, "the directory does not touch a local account's roles"


def test_posix_groups_and_a_dn_template_work_too(settings, slapd):
    posix = {
        **slapd,
        "A4C_LDAP_USER_SEARCH_BASE": "",
        "A4C_LDAP_USER_DN_TEMPLATE": f"uid=%(user)s,ou=people,{SUFFIX}",
        "A4C_LDAP_GROUP_TYPE": "posixGroup",
        "A4C_LDAP_GROUP_SEARCH_BASE": f"ou=posix-groups,{SUFFIX}",
        "A4C_LDAP_GROUP_OPERATORS": f"cn=operators,ou=posix-groups,{SUFFIX}",
        "A4C_LDAP_GROUP_VIEWERS": f"cn=viewers,ou=posix-groups,{SUFFIX}",
        "A4C_LDAP_GROUP_RESTORERS": f"cn=restorers,ou=posix-groups,{SUFFIX}",
    }
    use_directory(settings, posix)

    assert sign_in("oscar")[1] == 302 and roles("oscar") == {"operators"}
    assert sign_in("alice")[1] == 302 and roles("alice") == {"viewers"}


def test_the_checks_name_a_wrong_bind_password(settings, directory):
    assert directory_check().ok

    settings.A4C_LDAP_BIND_PASSWORD = "not-the-password"
    found = directory_check()
    deploy = checks.run_checks(include_deployment_checks=True, tags=["directory"])

    assert found.level == "error"
    assert "refused the bind DN cn=console,ou=services,dc=a4c,dc=test" in found.summary
    assert "with the password from A4C_LDAP_BIND_PASSWORD" in found.summary
    assert [m.id for m in deploy] == ["a4c.E014"] and "A4C_LDAP_BIND_PASSWORD" in deploy[0].msg


def test_the_checks_name_the_bind_password_file_and_a_group_that_is_not_there(
    settings, directory, tmp_path
):
    password_file = tmp_path / "bind-password"
    password_file.write_text("wrong\n")
    settings.A4C_LDAP_BIND_PASSWORD_FILE = str(password_file)

    assert f"A4C_LDAP_BIND_PASSWORD_FILE ({password_file})" in directory_check().summary

    password_file.write_text("console-secret\n")
    settings.A4C_LDAP_ROLE_GROUPS = {
        **settings.A4C_LDAP_ROLE_GROUPS,
        "operators": f"cn=ops,ou=groups,{SUFFIX}",
    }
    found = directory_check()
    assert found.level == "error"
    assert f"A4C_LDAP_GROUP_OPERATORS (cn=ops,ou=groups,{SUFFIX})" in found.summary


def test_the_checks_name_a_directory_that_does_not_answer(settings, directory):
    settings.A4C_LDAP_URL = f"ldap://127.0.0.1:{free_port()}"

    found = directory_check()

    assert found.level == "error" and "cannot be reached (A4C_LDAP_URL)" in found.summary


def test_the_doctor_names_a_wrong_bind_password_among_its_checks(settings, directory):
    from backups.doctor.checks import run_checks

    settings.A4C_LDAP_BIND_PASSWORD = "not-the-password"

    found = {check.name: check for check in run_checks(worker_timeout=0.2, lock=False)}

    assert found["Directory"].level == "error"
    assert "A4C_LDAP_BIND_PASSWORD" in found["Directory"].summary
