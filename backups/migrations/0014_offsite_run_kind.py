# The off-site copy, a Job of its own kind (issue 27).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('backups', '0013_drill_policy'),
    ]

    operations = [
        migrations.AlterField(
            model_name='job',
            name='kind',
            field=models.CharField(choices=[('backup', 'Backup'), ('restore', 'Restore'), ('verify', 'Verify'), ('delete', 'Delete'), ('drill', 'Drill'), ('offsite', 'Offsite')], db_index=True, max_length=12),
        ),
        migrations.AlterField(
            model_name='operationlock',
            name='kind',
            field=models.CharField(blank=True, choices=[('backup', 'Backup'), ('restore', 'Restore'), ('verify', 'Verify'), ('delete', 'Delete'), ('drill', 'Drill'), ('offsite', 'Offsite')], help_text='empty when free', max_length=20),
        ),
    ]
