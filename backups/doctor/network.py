"""Checks of the settings that face the network: HTTPS, throttling, sessions, the directory.

``settings_problems()`` reads settings only (every command start runs it, through
settings_checks.py); ``directory_check()`` binds to the directory with the configured DN and
password, so it runs in `manage.py doctor` and `manage.py check --deploy`, never at every start.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from django.conf import settings

from backups.doctor.result import NETWORK_TIMEOUT, Check

FIX_DIRECTORY = "README, 'Running it for a team': the directory."


def settings_problems() -> list[str]:
    problems = list(settings.NETWORK_SETTING_PROBLEMS)
    proxy = settings.A4C_TRUSTED_PROXY
    if proxy and proxy != "*":
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            problems.append(
                f"A4C_TRUSTED_PROXY is {proxy!r}: write the proxy's IP address (or * when only "
                "proxies can reach the console's port)."
            )
    if settings.A4C_HTTPS and not proxy:
        problems.append(
            "A4C_HTTPS is on but A4C_TRUSTED_PROXY is empty: the web server drops the proxy's "
            "X-Forwarded-Proto, so every request would be redirected to https again. Set it to "
            "the reverse proxy's address."
        )
    if settings.A4C_HTTPS and settings.DEBUG:
        problems.append("A4C_HTTPS is on with DJANGO_DEBUG: turn DJANGO_DEBUG off on a network.")
    return problems + directory_problems()


# Settings that only mean something with A4C_LDAP_URL (those with defaults left out).
_DIRECTORY_SETTINGS = (
    "A4C_LDAP_BIND_DN",
    "A4C_LDAP_BIND_PASSWORD",
    "A4C_LDAP_BIND_PASSWORD_FILE",
    "A4C_LDAP_USER_DN_TEMPLATE",
    "A4C_LDAP_USER_SEARCH_BASE",
    "A4C_LDAP_GROUP_SEARCH_BASE",
    "A4C_LDAP_GROUP_SUPERUSERS",
    "A4C_LDAP_CA_CERT",
)


def directory_problems() -> list[str]:
    url = settings.A4C_LDAP_URL
    if not url:
        named = [name for name in _DIRECTORY_SETTINGS if getattr(settings, name)]
        named += [f"A4C_LDAP_GROUP_{r.upper()}" for r, dn in _role_groups().items() if dn]
        if named:
            return [f"{', '.join(named)} set but A4C_LDAP_URL is empty: the directory is off."]
        return []
    import ldap.dn  # only with a directory: every command's settings check runs this

    from a4c_backup.ldap_config import GROUP_TYPES, bind_password

    problems = []
    if not url.lower().startswith(("ldap://", "ldaps://", "ldapi://")):
        problems.append(
            f"A4C_LDAP_URL is {url!r}: write ldap://host:389 or ldaps://host:636 "
            "(several separated by spaces)."
        )
    template, base = settings.A4C_LDAP_USER_DN_TEMPLATE, settings.A4C_LDAP_USER_SEARCH_BASE
    if template and base:
        problems.append(
            "Both A4C_LDAP_USER_DN_TEMPLATE and A4C_LDAP_USER_SEARCH_BASE are set: choose one."
        )
    elif not template and not base:
        problems.append(
            "A4C_LDAP_URL is set but neither A4C_LDAP_USER_DN_TEMPLATE (uid=%(user)s,ou=people,"
            "dc=example,dc=org) nor A4C_LDAP_USER_SEARCH_BASE says where people are."
        )
    elif template and "%(user)s" not in template:
        problems.append(f"A4C_LDAP_USER_DN_TEMPLATE is {template!r}: it must hold %(user)s.")
    if base and "%(user)s" not in settings.A4C_LDAP_USER_FILTER:
        problems.append(
            f"A4C_LDAP_USER_FILTER is {settings.A4C_LDAP_USER_FILTER!r}: it must hold %(user)s, "
            "as in (uid=%(user)s)."
        )
    if settings.A4C_LDAP_GROUP_TYPE.strip().lower() not in GROUP_TYPES:
        problems.append(
            f"A4C_LDAP_GROUP_TYPE is {settings.A4C_LDAP_GROUP_TYPE!r}: write groupOfNames or "
            "posixGroup."
        )
    groups = {f"A4C_LDAP_GROUP_{role.upper()}": dn for role, dn in _role_groups().items()}
    for name, dn in [
        ("A4C_LDAP_BIND_DN", settings.A4C_LDAP_BIND_DN),
        ("A4C_LDAP_USER_SEARCH_BASE", base),
        ("A4C_LDAP_GROUP_SEARCH_BASE", settings.A4C_LDAP_GROUP_SEARCH_BASE),
        *groups.items(),
    ]:
        if dn and not ldap.dn.is_dn(dn):
            problems.append(f"{name} is {dn!r}, which is not a DN (cn=...,dc=example,dc=org).")
    if any(groups.values()) and not settings.A4C_LDAP_GROUP_SEARCH_BASE:
        problems.append(
            "A4C_LDAP_GROUP_* name directory groups but A4C_LDAP_GROUP_SEARCH_BASE is empty: "
            "no role would ever be given."
        )
    ca = settings.A4C_LDAP_CA_CERT
    if ca and not Path(ca).is_file():
        problems.append(f"A4C_LDAP_CA_CERT names {ca}, which is not a file.")
    password_file = settings.A4C_LDAP_BIND_PASSWORD_FILE
    if password_file and not bind_password({"A4C_LDAP_BIND_PASSWORD_FILE": password_file}):
        problems.append(
            f"A4C_LDAP_BIND_PASSWORD_FILE names {password_file}, which cannot be read or is empty."
        )
    return problems


def _role_groups() -> dict[str, str]:
    return {**settings.A4C_LDAP_ROLE_GROUPS, "superusers": settings.A4C_LDAP_GROUP_SUPERUSERS}


def directory_check() -> Check | None:
    """Binds as A4C_LDAP_BIND_DN and looks up the configured groups; None when there is no
    directory."""
    import ldap

    if not settings.A4C_LDAP_URL:
        return None
    name = "Directory"
    url = settings.A4C_LDAP_URL
    password_from = (
        f"A4C_LDAP_BIND_PASSWORD_FILE ({settings.A4C_LDAP_BIND_PASSWORD_FILE})"
        if settings.A4C_LDAP_BIND_PASSWORD_FILE
        else "A4C_LDAP_BIND_PASSWORD"
    )
    try:
        connection = _connect()
        connection.simple_bind_s(settings.A4C_LDAP_BIND_DN, _bind_password())
    except ldap.INVALID_CREDENTIALS:
        return Check(
            name,
            False,
            f"{url} refused the bind DN {settings.A4C_LDAP_BIND_DN or '(anonymous)'} with the "
            f"password from {password_from}: wrong password or wrong DN",
            f"Correct {password_from} or A4C_LDAP_BIND_DN.",
            "error",
        )
    except ldap.SERVER_DOWN as exc:
        return Check(
            name,
            False,
            f"{url} cannot be reached (A4C_LDAP_URL): {_ldap_message(exc)}",
            "Start the directory, or correct A4C_LDAP_URL (and A4C_LDAP_START_TLS, "
            "A4C_LDAP_CA_CERT for TLS).",
            "error",
        )
    except ldap.LDAPError as exc:
        return Check(
            name,
            False,
            f"{url}: {_ldap_message(exc)}",
            "Check A4C_LDAP_URL, A4C_LDAP_START_TLS and A4C_LDAP_CA_CERT. " + FIX_DIRECTORY,
            "error",
        )
    missing = []
    try:
        for role, dn in _role_groups().items():
            if dn and not _exists(connection, dn):
                missing.append(f"A4C_LDAP_GROUP_{role.upper()} ({dn})")
        base = settings.A4C_LDAP_GROUP_SEARCH_BASE
        if base and not _exists(connection, base):
            missing.append(f"A4C_LDAP_GROUP_SEARCH_BASE ({base})")
    finally:
        connection.unbind_s()
    if missing:
        return Check(
            name,
            False,
            f"signed in to {url}, but these name nothing there: {', '.join(missing)}",
            "Correct the DNs of the settings named.",
            "error",
        )
    return Check(name, True, f"{url}: bound as {settings.A4C_LDAP_BIND_DN or 'anonymous'}")


def _bind_password() -> str:
    from a4c_backup.ldap_config import bind_password

    return bind_password(
        {
            "A4C_LDAP_BIND_PASSWORD": settings.A4C_LDAP_BIND_PASSWORD,
            "A4C_LDAP_BIND_PASSWORD_FILE": settings.A4C_LDAP_BIND_PASSWORD_FILE,
        }
    )


def _connect():
    import ldap

    connection = ldap.initialize(settings.A4C_LDAP_URL)
    timeout = min(NETWORK_TIMEOUT, settings.A4C_LDAP_TIMEOUT)
    connection.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
    connection.set_option(ldap.OPT_TIMEOUT, timeout)
    connection.set_option(ldap.OPT_REFERRALS, 0)
    if settings.A4C_LDAP_CA_CERT:
        connection.set_option(ldap.OPT_X_TLS_CACERTFILE, settings.A4C_LDAP_CA_CERT)
        connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    if settings.A4C_LDAP_START_TLS:
        connection.start_tls_s()
    return connection


def _exists(connection, dn: str) -> bool:
    import ldap

    try:
        connection.search_s(dn, ldap.SCOPE_BASE, attrlist=["1.1"])
    except ldap.NO_SUCH_OBJECT:
        return False
    return True


def _ldap_message(exc) -> str:

    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return "; ".join(str(detail[k]) for k in ("desc", "info") if detail.get(k)) or str(exc)
