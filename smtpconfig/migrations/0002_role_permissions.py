from django.db import migrations

from calmail.common.roles import grant_permissions

SMTP_ALL = [
    "smtpconfig.view_smtpconfiguration",
    "smtpconfig.add_smtpconfiguration",
    "smtpconfig.change_smtpconfiguration",
    "smtpconfig.delete_smtpconfiguration",
    "smtpconfig.test_smtpconfiguration",
]


def grant(apps, schema_editor):
    # Administrators manage configurations; everyone else with a role may see the
    # list (never a secret) so that they can pick a configuration when composing.
    grant_permissions(
        apps,
        {
            "Administrator": SMTP_ALL,
            "Power user": ["smtpconfig.view_smtpconfiguration"],
            "Viewer": ["smtpconfig.view_smtpconfiguration"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("smtpconfig", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
