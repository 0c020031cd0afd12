"""Backups say whether a key trusted here vouched for them (issue 23, item 2).

Rows that exist already were taken here or imported before records were signed: they stay
trusted (foreign=False), as they were; their records are signed by the next sync.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0010_jobs_and_run_kinds"),
    ]

    operations = [
        migrations.AddField(
            model_name="backup",
            name="foreign",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="backup",
            name="signed_by",
            field=models.CharField(blank=True, max_length=100),
        ),
    ]
