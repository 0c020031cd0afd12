"""People in the console's roles (migration 0002), for the view and browser tests."""

from __future__ import annotations

from importlib import import_module

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

ROLES = import_module("backups.migrations.0002_roles_and_singletons").ROLES


def member(name: str, role: str | None):
    """A user whose password is pw-<name>-12345, in one role (its group re-made after a flush)."""
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-12345")
    if role:
        group, created = Group.objects.get_or_create(name=role)
        if created:
            group.permissions.set(
                Permission.objects.filter(
                    content_type__app_label="backups", codename__in=ROLES[role]
                )
            )
        user.groups.add(group)
    return user
