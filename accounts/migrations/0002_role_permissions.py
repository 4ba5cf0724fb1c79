from django.db import migrations

from calmail.common.roles import grant_permissions


def grant(apps, schema_editor):
    # Only administrators manage people: users (Django's) and teams.
    grant_permissions(
        apps,
        {
            "Administrator": [
                "auth.view_user",
                "auth.add_user",
                "auth.change_user",
                "auth.delete_user",
                "accounts.view_team",
                "accounts.add_team",
                "accounts.change_team",
                "accounts.delete_team",
            ],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
