"""The three staff roles as groups: Triager works reports, Lead also deletes, exports and
manages settings and keys, Auditor only reads."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = ["view_report", "view_message", "view_attachment", "view_event", "view_outboundemail", "view_statuslink",
        "view_programme"]
TRIAGER = [*VIEW, "change_report", "change_outboundemail"]
LEAD = [*TRIAGER, "delete_report", "export_report", "delete_outboundemail", "change_programme"]
ROLES = {"Triager": TRIAGER, "Lead": LEAD, "Auditor": VIEW}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; create them now.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="disclosure",
                                                         codename__in=codenames))
    # Leads manage staff two-factor devices (removing a lost one lets its owner enrol again).
    Group.objects.get(name="Lead").permissions.add(*Permission.objects.filter(
        content_type__app_label="otp_totp", codename__in=["view_totpdevice", "delete_totpdevice"]))


class Migration(migrations.Migration):
    dependencies = [
        ("disclosure", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("otp_totp", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
