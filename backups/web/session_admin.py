"""The admin's Users page with one more action: "Sign out everywhere".

Imported by a4c_backup/urls.py before the admin's URLs are built.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from backups import audit
from backups.audit import Actor
from backups.web.sessions import sign_out_everywhere

User = get_user_model()


@admin.action(description="Sign out everywhere (end all their sessions)")
def sign_out_everywhere_action(modeladmin, request, queryset):
    actor = Actor.from_request(request)
    total = 0
    for user in queryset:
        ended = sign_out_everywhere(user)
        total += ended
        audit.record(
            actor,
            "auth.signed_out_everywhere",
            target=user.get_username(),
            message=f"{ended} session{'s' if ended != 1 else ''} ended from the admin.",
            parameters={"sessions": ended},
        )
    modeladmin.message_user(
        request,
        f"{total} session{'s' if total != 1 else ''} ended; those people must sign in again.",
        messages.SUCCESS,
    )


class ConsoleUserAdmin(UserAdmin):
    actions = [sign_out_everywhere_action]


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, ConsoleUserAdmin)
