"""Every staff role reads the Inbound mail log (what arrived at the security address, and
why a message was ignored); as with outgoing email, only Leads delete its rows."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {"Auditor": ["view_inboundmail"], "Triager": ["view_inboundmail"],
         "Lead": ["view_inboundmail", "delete_inboundmail"]}


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations; create these now.
    config = apps.get_app_config("disclosure")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="disclosure",
                                                         codename__in=codenames))


class Migration(migrations.Migration):

    dependencies = [
        ("disclosure", "0008_inbound_mail"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
