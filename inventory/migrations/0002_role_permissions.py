from django.db import migrations

from calmail.common.roles import grant_permissions

MODELS = (
    "customer",
    "customercontact",
    "location",
    "instrument",
    "supportticket",
    "userprofile",
    "distributionlist",
    "distributionlistaddress",
    "systemaddress",
)
VIEW = [f"inventory.view_{model}" for model in MODELS]
ALL = [f"inventory.{action}_{model}" for model in MODELS for action in ("view", "add", "change", "delete")]


def grant(apps, schema_editor):
    # Everyone with a role reads the data and recipients (to pick recipients, to see what
    # a report contains); power users also maintain distribution lists; administrators
    # manage everything.
    grant_permissions(
        apps,
        {
            "Administrator": ALL,
            "Power user": [
                *VIEW,
                "inventory.add_distributionlist",
                "inventory.change_distributionlist",
            ],
            "Viewer": VIEW,
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
