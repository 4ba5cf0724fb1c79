"""The report scope of an action's addresses that belong to no customer or user.

Until now system addresses, typed addresses and the extra addresses of distribution lists
received the report over all customers. Each action that has such recipients gets the
scope that keeps it working where that is still allowed: "all customers (internal)" when
all of them are system addresses, otherwise "no report". The Log records each action
decided so.
"""

import re

from django.conf import settings
from django.db import migrations, models
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

# A token that names an object; anything else an action stores is a typed address.
REFERENCE = re.compile(r"^\s*(user|customer|list|system)\s*:\s*(\d+)\s*$", re.IGNORECASE)

KEPT_ALL = gettext_noop(
    "Report scope of %(action)s set to “all customers (internal)”: %(recipients)s "
    "received every customer's records so far and, as system addresses, still may."
)
SET_NONE = gettext_noop(
    "Report scope of %(action)s set to “no report”: %(recipients)s received every "
    "customer's records so far, which only system addresses may, so none of them gets a "
    "report now. Choose customers on the action if they need one."
)


def _rendered(message: str, params: dict) -> str:
    # As maillog's entries keep it: the message in every language, for the Log's search.
    texts = []
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            texts.append(gettext(message) % params)
    return "\n".join(dict.fromkeys(texts))


def decide_report_scopes(apps, schema_editor):
    Action = apps.get_model("actions", "Action")
    DistributionList = apps.get_model("inventory", "DistributionList")
    DistributionListAddress = apps.get_model("inventory", "DistributionListAddress")
    SystemAddress = apps.get_model("inventory", "SystemAddress")
    LogEntry = apps.get_model("maillog", "LogEntry")
    ContentType = apps.get_model("contenttypes", "ContentType")

    actions = list(Action.objects.order_by("pk"))
    parsed = {}
    list_ids, system_ids = set(), set()
    for action in actions:
        systems, lists, typed = [], [], []
        for token in action.recipients or []:
            match = REFERENCE.match(str(token))
            if match is None:
                typed.append(str(token))
                continue
            kind, pk = match.group(1).lower(), int(match.group(2))
            if kind == "system":
                systems.append(pk)
            elif kind == "list":
                lists.append(pk)
        parsed[action.pk] = (systems, lists, typed)
        list_ids.update(lists)
        system_ids.update(systems)
    # Only a list's extra addresses received all customers; its users and customers not.
    with_addresses = set(
        DistributionListAddress.objects.filter(distribution_list_id__in=list_ids)
        .values_list("distribution_list_id", flat=True)
        .distinct()
    )
    list_names = dict(
        DistributionList.objects.filter(pk__in=with_addresses).values_list("pk", "name")
    )
    system_names = {
        pk: f"{name} <{email}>" if name else email
        for pk, name, email in SystemAddress.objects.filter(pk__in=system_ids).values_list(
            "pk", "name", "email"
        )
    }
    content_type = None
    for action in actions:
        systems, lists, typed = parsed[action.pk]
        lists = [pk for pk in lists if pk in with_addresses]
        if not (systems or lists or typed):
            continue
        scope = "none" if (lists or typed) else "all"
        Action.objects.filter(pk=action.pk).update(report_scope=scope)
        labels = [
            *(system_names.get(pk, f"system:{pk}") for pk in systems),
            *(list_names.get(pk, f"list:{pk}") for pk in lists),
            *typed,
        ]
        params = {"action": action.description, "recipients": ", ".join(labels)}
        message = KEPT_ALL if scope == "all" else SET_NONE
        if content_type is None:
            content_type, _created = ContentType.objects.get_or_create(
                app_label="actions", model="action"
            )
        LogEntry.objects.create(
            level="info" if scope == "all" else "warning",
            category="action",
            actor=None,
            actor_label="system",
            content_type=content_type,
            object_id=action.pk,
            object_label=action.description[:300],
            message=message,
            params=params,
            details={"report_scope": scope, "recipients": labels},
            group_id=action.group_id,
            search_text="\n".join([_rendered(message, params), "system", action.description[:300]]),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("actions", "0005_actionrun_audience"),
        ("inventory", "0002_role_permissions"),
        ("maillog", "0003_category_users"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="action",
            name="report_scope",
            field=models.CharField(
                choices=[
                    ("none", "no report"),
                    ("customers", "chosen customers"),
                    ("all", "all customers (internal)"),
                ],
                default="none",
                max_length=10,
                verbose_name="report for other addresses",
            ),
        ),
        migrations.AddField(
            model_name="action",
            name="report_scope_customers",
            field=models.ManyToManyField(
                blank=True,
                related_name="+",
                to="inventory.customer",
                verbose_name="customers of the report",
            ),
        ),
        migrations.RunPython(decide_report_scopes, migrations.RunPython.noop),
    ]
