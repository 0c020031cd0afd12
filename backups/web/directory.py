"""Signing in against the directory (LDAP): its groups give the console's roles.

DirectoryBackend is django-auth-ldap's backend with one addition: at every sign-in the role
groups (viewers, operators, restorers; migration 0002) are set from the directory groups that
A4C_LDAP_GROUP_* name, so a person removed from a directory group loses the role at their next
sign-in. Groups the directory does not name are left as the admin set them; local accounts are
signed in by ModelBackend, after this one.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django_auth_ldap.backend import LDAPBackend

from backups import audit
from backups.audit import Actor


class DirectoryBackend(LDAPBackend):
    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None and getattr(settings, "AUTH_LDAP_GROUP_SEARCH", None) is not None:
            apply_roles(user, {dn.lower() for dn in ldap_user.group_dns})
        return user


def apply_roles(user, member_of: set[str]) -> None:
    """Puts ``user`` in each role group whose directory group (a DN) is in ``member_of``, and
    out of each other role group the directory names."""
    added, removed = [], []
    for role, group_dn in settings.A4C_LDAP_ROLE_GROUPS.items():
        if not group_dn:
            continue
        group, _ = Group.objects.get_or_create(name=role)
        has = user.groups.filter(pk=group.pk).exists()
        wanted = group_dn.strip().lower() in member_of
        if wanted and not has:
            user.groups.add(group)
            added.append(role)
        elif has and not wanted:
            user.groups.remove(group)
            removed.append(role)
    if added or removed:
        audit.record(
            Actor.system("directory"),
            "auth.roles_changed",
            target=user.get_username(),
            message="From the directory at sign-in: "
            + "; ".join(
                part
                for part in (
                    f"added to {', '.join(added)}" if added else "",
                    f"removed from {', '.join(removed)}" if removed else "",
                )
                if part
            )
            + ".",
            parameters={"added": added, "removed": removed},
        )
