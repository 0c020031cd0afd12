"""The three roles as groups, the lock row and the audit chain head."""

from django.db import migrations

ROLES = {
    "viewers": ["view_backup", "view_restorerun", "view_auditevent"],
    "operators": [
        "view_backup",
        "view_restorerun",
        "view_auditevent",
        "add_backup",
        "verify_backup",
        "cancel_operation",
    ],
    "restorers": [
        "view_backup",
        "view_restorerun",
        "view_auditevent",
        "add_backup",
        "verify_backup",
        "cancel_operation",
        "restore_backup",
        "rollback_restore",
        "delete_backup",
    ],
}


def create(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="backups", codename__in=codenames)
        )
    apps.get_model("backups", "OperationLock").objects.get_or_create(pk=1)
    apps.get_model("backups", "AuditChainHead").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
