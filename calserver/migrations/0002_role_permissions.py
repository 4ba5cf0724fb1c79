from django.db import migrations

from calmail.common.roles import grant_permissions


def grant(apps, schema_editor):
    # The connection holds calServer's credentials and decides where calmail's data
    # comes from: administrators only.
    grant_permissions(
        apps,
        {
            "Administrator": [
                "calserver.view_calserverconnection",
                "calserver.add_calserverconnection",
                "calserver.change_calserverconnection",
                "calserver.delete_calserverconnection",
                "calserver.sync_calserverconnection",
                "calserver.view_syncrun",
            ],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("calserver", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
