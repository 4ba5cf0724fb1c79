import json

import django_filters
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _

from calmail.common.filters import CalmailFilterSet, DateRangeFilter, NumberRangeFilter
from calmail.common.roles import is_administrator
from inventory.selectors import owner_group_choices
from mailbox.models import (
    AddressType,
    AttachmentType,
    AttemptOutcome,
    DeliveryAttempt,
    ExportType,
    OutboxMessage,
    Source,
    Status,
)
from smtpconfig.models import SmtpConfiguration

# ExportType.NONE is stored as "", which a select cannot tell from "any".
NO_EXPORT = "none"
EXPORT_TYPE_CHOICES = [
    (NO_EXPORT if value == ExportType.NONE else value, label) for value, label in ExportType.choices
]


def _teams(request):
    # Only teams whose mails the user may see anyway.
    if request is None:
        return Group.objects.none()
    return owner_group_choices(user=request.user)


def _creators(request):
    # Others only ever see their own name here: the list of users is not theirs to browse.
    users = get_user_model().objects.order_by("username")
    if request is None or not is_administrator(request.user):
        return users.filter(pk=getattr(getattr(request, "user", None), "pk", None))
    return users


class OutboxFilter(CalmailFilterSet):
    """One filter per column of the outbox (5.6.2), plus a free-text search."""

    q = django_filters.CharFilter(label=_("Search (recipient, subject)"), method="filter_search")
    source = django_filters.ChoiceFilter(
        label=_("Source"), choices=Source.choices, empty_label=_("any")
    )
    source_label = django_filters.CharFilter(label=_("Mail action"), lookup_expr="icontains")
    recipient = django_filters.CharFilter(label=_("Recipient"), lookup_expr="icontains")
    recipient_owner = django_filters.CharFilter(label=_("User/Customer"), lookup_expr="icontains")
    address_type = django_filters.ChoiceFilter(
        label=_("Address type"), choices=AddressType.choices, empty_label=_("any")
    )
    attachment_count = NumberRangeFilter(label=_("Attachments"))
    export_type = django_filters.ChoiceFilter(
        label=_("Export type"),
        choices=EXPORT_TYPE_CHOICES,
        empty_label=_("any"),
        method="filter_export_type",
    )
    parameters = django_filters.CharFilter(label=_("Parameters"), method="filter_parameters")
    attachment_type = django_filters.ChoiceFilter(
        label=_("Attachment type"),
        choices=AttachmentType.choices,
        empty_label=_("any"),
        method="filter_attachment_type",
    )
    exported_attachments = NumberRangeFilter(label=_("Exported attachments"))
    status = django_filters.ChoiceFilter(
        label=_("Status"), choices=Status.choices, empty_label=_("any")
    )
    sent_at = DateRangeFilter(label=_("Sent"))
    error_message = django_filters.CharFilter(label=_("Error message"), lookup_expr="icontains")
    created_at = DateRangeFilter(label=_("Created"))
    subject = django_filters.CharFilter(label=_("Subject"), lookup_expr="icontains")
    # Beyond the spec's columns: the links of "Users & teams" (a team's, a user's mails).
    owner_group = django_filters.ModelChoiceFilter(
        label=_("Team"), queryset=_teams, empty_label=_("any")
    )
    created_by = django_filters.ModelChoiceFilter(
        label=_("Created by"), queryset=_creators, empty_label=_("any")
    )

    class Meta:
        model = OutboxMessage
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(recipient__icontains=value) | Q(subject__icontains=value))

    def filter_export_type(self, queryset, name, value):
        return queryset.filter(export_type=ExportType.NONE if value == NO_EXPORT else value)

    def filter_attachment_type(self, queryset, name, value):
        # As the list shows it: a mail without attachments has no attachment type.
        return queryset.filter(attachment_type=value, attachment_count__gt=0)

    def filter_parameters(self, queryset, name, value):
        # The JSON as text: what the list shows is what can be searched. Some databases keep
        # JSON with non-ASCII characters escaped (\u00fc), so look for that spelling too.
        condition = Q(parameters_text__icontains=value)
        escaped = json.dumps(value)[1:-1]
        if escaped != value:
            condition |= Q(parameters_text__icontains=escaped)
        return queryset.alias(parameters_text=Cast("parameters", TextField())).filter(condition)


class DeliveryAttemptFilter(CalmailFilterSet):
    """The outbox's delivery attempts: one filter per column."""

    started_at = DateRangeFilter(label=_("Time"))
    smtp_configuration = django_filters.ModelChoiceFilter(
        label=_("SMTP configuration"),
        queryset=SmtpConfiguration.objects.order_by("name"),
        empty_label=_("any"),
    )
    outcome = django_filters.ChoiceFilter(
        label=_("Outcome"), choices=AttemptOutcome.choices, empty_label=_("any")
    )
    reply_code = NumberRangeFilter(label=_("Reply code"))
    reply_text = django_filters.CharFilter(label=_("Reply"), lookup_expr="icontains")
    duration_ms = NumberRangeFilter(label=_("Duration (ms)"))
    worker = django_filters.CharFilter(label=_("Worker"), lookup_expr="icontains")
    message = django_filters.NumberFilter(label=_("Mail ID"))
    recipient = django_filters.CharFilter(
        label=_("Recipient"), field_name="message__recipient", lookup_expr="icontains"
    )

    class Meta:
        model = DeliveryAttempt
        fields = []
