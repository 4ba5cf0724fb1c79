from django.db import migrations

from calmail.common.roles import grant_permissions


def grant(apps, schema_editor):
    # Only administrators import data and see the imports (the views check the role too).
    grant_permissions(
        apps,
        {
            "Administrator": [
                "imports.view_importrun",
                "imports.add_importrun",
                "imports.view_mappingtemplate",
                "imports.add_mappingtemplate",
                "imports.change_mappingtemplate",
            ],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0001_initial"),
        ("inventory", "0004_active_and_external_ids"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
