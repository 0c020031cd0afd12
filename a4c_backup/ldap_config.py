"""The A4C_LDAP_* settings turned into django-auth-ldap's AUTH_LDAP_* ones.

Read while settings.py runs, so it imports nothing of Django's models. A value it cannot use
(an unknown group type, an unreadable password file) is left out rather than raised: the
system checks in backups/doctor/directory.py name it, where a crash here would name nothing.
"""

from __future__ import annotations

from pathlib import Path

import ldap
from django_auth_ldap.config import GroupOfNamesType, LDAPSearch, PosixGroupType

GROUP_TYPES = {"groupofnames": GroupOfNamesType, "posixgroup": PosixGroupType}
GROUP_OBJECT_CLASSES = {"groupofnames": "groupOfNames", "posixgroup": "posixGroup"}


def bind_password(values: dict) -> str:
    """A4C_LDAP_BIND_PASSWORD_FILE's first line when set, else A4C_LDAP_BIND_PASSWORD."""
    path = values.get("A4C_LDAP_BIND_PASSWORD_FILE", "")
    if not path:
        return values.get("A4C_LDAP_BIND_PASSWORD", "")
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        return ""


def ldap_settings(values: dict) -> dict:
    timeout = float(values["A4C_LDAP_TIMEOUT"])
    options = {ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout}
    if values["A4C_LDAP_CA_CERT"]:
        options[ldap.OPT_X_TLS_CACERTFILE] = values["A4C_LDAP_CA_CERT"]
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: makes the TLS options above take effect
    result = {
        "AUTH_LDAP_SERVER_URI": values["A4C_LDAP_URL"],
        "AUTH_LDAP_BIND_DN": values["A4C_LDAP_BIND_DN"],
        "AUTH_LDAP_BIND_PASSWORD": bind_password(values),
        "AUTH_LDAP_START_TLS": values["A4C_LDAP_START_TLS"],
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        # Each sign-in asks the directory again: a person removed from a group loses the role
        # at their next sign-in, not when a cache expires.
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
    }
    if values["A4C_LDAP_USER_DN_TEMPLATE"]:
        result["AUTH_LDAP_USER_DN_TEMPLATE"] = values["A4C_LDAP_USER_DN_TEMPLATE"]
    elif values["A4C_LDAP_USER_SEARCH_BASE"]:
        result["AUTH_LDAP_USER_SEARCH"] = LDAPSearch(
            values["A4C_LDAP_USER_SEARCH_BASE"], ldap.SCOPE_SUBTREE, values["A4C_LDAP_USER_FILTER"]
        )
    kind = values["A4C_LDAP_GROUP_TYPE"].strip().lower()
    if values["A4C_LDAP_GROUP_SEARCH_BASE"] and kind in GROUP_TYPES:
        result["AUTH_LDAP_GROUP_SEARCH"] = LDAPSearch(
            values["A4C_LDAP_GROUP_SEARCH_BASE"],
            ldap.SCOPE_SUBTREE,
            f"(objectClass={GROUP_OBJECT_CLASSES[kind]})",
        )
        result["AUTH_LDAP_GROUP_TYPE"] = GROUP_TYPES[kind]()
        superusers = values["A4C_LDAP_GROUP_SUPERUSERS"]
        if superusers:
            result["AUTH_LDAP_USER_FLAGS_BY_GROUP"] = {
                "is_superuser": superusers,
                "is_staff": superusers,
            }
    return result
