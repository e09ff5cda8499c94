"""Placing or lifting a legal hold (which stops retention) is a Lead's decision: a
permission of its own, given to the Lead group."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_to_leads(apps, schema_editor):
    # Permissions are normally created after all migrations; create this one now.
    config = apps.get_app_config("disclosure")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    lead, _ = Group.objects.get_or_create(name="Lead")
    lead.permissions.add(*Permission.objects.filter(content_type__app_label="disclosure",
                                                    codename="set_legal_hold"))


class Migration(migrations.Migration):

    dependencies = [
        ('disclosure', '0006_export_event'),
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='report',
            options={'ordering': ['-received_at'], 'permissions': [('export_report', 'Can export reports'), ('set_legal_hold', 'Can place or lift a legal hold')]},
        ),
        migrations.RunPython(grant_to_leads, migrations.RunPython.noop),
    ]
