import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from actions.forms import MONTH_CHOICES, WEEKDAY_CHOICES
from actions.models import Action, ActionRun
from actions.schedule import LAST
from actions.selectors import VIEW_RUNS, ActionRights
from calmail.common.i18n import render_stored
from calmail.common.tables import CalmailTable, MenuItem, RowMenuColumn, YesNoColumn

WEEKDAYS = dict(WEEKDAY_CHOICES)
MONTHS = dict(MONTH_CHOICES)


def _any_or(values, label) -> str:
    if not values:
        return str(_("any"))
    return ", ".join(label(value) for value in values)


def _local(value) -> str:
    return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT") if value else "—"


class ActionTable(CalmailTable):
    """The 13 columns of 5.6.1, plus the next run."""

    default_columns = (
        "description",
        "days",
        "weekdays",
        "months",
        "group",
        "published",
        "sent_count",
        "template",
        "next_due_at",
    )
    filter_columns = {"day": "days", "weekday": "weekdays", "month": "months"}

    # Linked in render_description, to a page the reader may open.
    description = tables.Column(verbose_name=_("Description"))
    days = tables.Column(verbose_name=_("Day of month"), orderable=False)
    weekdays = tables.Column(verbose_name=_("Weekday"), orderable=False)
    months = tables.Column(verbose_name=_("Month"), orderable=False)
    start = tables.Column(verbose_name=_("Start"))
    end = tables.Column(verbose_name=_("End"), default="—")
    group = tables.Column(verbose_name=_("Group"), order_by=("group__name",))
    published = YesNoColumn(verbose_name=_("Published"))
    send_without_attachments = YesNoColumn(verbose_name=_("Send without attachments"))
    sent_count = tables.Column(verbose_name=_("Sent"))
    template = tables.Column(verbose_name=_("Template"), order_by=("template__name",))
    smtp_configuration = tables.Column(
        verbose_name=_("SMTP configuration"), order_by=("smtp_configuration__name",)
    )
    next_due_at = tables.Column(verbose_name=_("Next run"), default="—")
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        model = Action
        fields = ()
        sequence = (
            "description",
            "days",
            "weekdays",
            "months",
            "start",
            "end",
            "group",
            "published",
            "send_without_attachments",
            "sent_count",
            "template",
            "smtp_configuration",
            "next_due_at",
            "actions",
        )
        order_by = ("description",)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.rights = ActionRights(user) if user is not None else None

    def render_description(self, record, value):
        # Links follow permissions: the edit page for who may change the action, else its
        # run history, else plain text (a link that answers 403 helps nobody).
        url = None
        if self.rights is not None and self.rights.can_change(record):
            url = reverse("actions:update", args=[record.pk])
        elif self.rights is not None and self.rights.user.has_perm(VIEW_RUNS):
            url = reverse("actions:runs", args=[record.pk])
        return format_html('<a href="{}">{}</a>', url, value) if url else value

    def value_description(self, value):
        return value

    def render_days(self, record):
        return _any_or(record.days, lambda d: str(_("last")) if d == LAST else str(d))

    def value_days(self, record):
        return self.render_days(record)

    def render_weekdays(self, record):
        return _any_or(record.weekdays, lambda d: str(WEEKDAYS.get(str(d), d)))

    def value_weekdays(self, record):
        return self.render_weekdays(record)

    def render_months(self, record):
        return _any_or(record.months, lambda m: str(MONTHS.get(str(m), m)))

    def value_months(self, record):
        return self.render_months(record)

    def render_start(self, value):
        return _local(value)

    def render_end(self, value):
        return _local(value)

    def render_next_due_at(self, value):
        return _local(value)

    def get_row_menu(self, record):
        rights = self.rights
        if rights is None:
            return []
        items = []
        change = rights.can_change(record)
        if change:
            items.append(MenuItem(_("Edit"), reverse("actions:update", args=[record.pk]), "pencil"))
        if rights.can_add() and change:
            items.append(
                MenuItem(_("Duplicate"), reverse("actions:duplicate", args=[record.pk]), "copy")
            )
        if change:
            label = _("Deactivate") if record.published else _("Activate")
            items.append(MenuItem(label, reverse("actions:toggle", args=[record.pk]), "power"))
            items.append(
                MenuItem(_("Run now"), reverse("actions:run_now", args=[record.pk]), "play")
            )
        items.append(
            MenuItem(_("Run history"), reverse("actions:runs", args=[record.pk]), "clock-history")
        )
        if rights.can_delete(record):
            items.append(
                MenuItem(
                    _("Delete"), reverse("actions:delete", args=[record.pk]), "trash", danger=True
                )
            )
        return items


class ActionRunTable(CalmailTable):
    slot = tables.Column(verbose_name=_("Slot"))
    trigger = tables.Column(verbose_name=_("Trigger"))
    status = tables.Column(verbose_name=_("Status"))
    started_at = tables.Column(verbose_name=_("Started"), default="—")
    finished_at = tables.Column(verbose_name=_("Finished"), default="—")
    queued_count = tables.Column(verbose_name=_("Mails queued"))
    skipped_count = tables.Column(verbose_name=_("Skipped"))
    skipped = tables.Column(verbose_name=_("Reasons"), orderable=False)
    failed_count = tables.Column(verbose_name=_("Failed"))
    audience = tables.Column(verbose_name=_("Audience"), orderable=False, empty_values=())

    class Meta(CalmailTable.Meta):
        model = ActionRun
        fields = ()
        sequence = (
            "slot",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "queued_count",
            "skipped_count",
            "skipped",
            "failed_count",
            "audience",
        )
        order_by = ("-slot",)

    def render_slot(self, value):
        return _local(value)

    def render_started_at(self, value):
        return _local(value)

    def render_finished_at(self, value):
        return _local(value)

    def render_skipped(self, record):
        if not record.skipped:
            return "—"
        return "; ".join(
            f"{s.get('recipient')}: {render_stored(s.get('reason_text'), s.get('reason', ''))}"
            for s in record.skipped
        )

    def value_skipped(self, record):
        return self.render_skipped(record)

    @staticmethod
    def _audience_lines(audience: dict) -> tuple[str, list[str]]:
        """ "2 mails, 1 skipped" and one line per recipient shown: "a@x (1001 · Muster
        GmbH): 3 rows"."""
        mails, skipped = audience.get("mails", 0), audience.get("skipped", 0)
        summary = ngettext("%(count)s mail", "%(count)s mails", mails) % {"count": mails}
        if skipped:
            summary += ", " + ngettext("%(count)s skipped", "%(count)s skipped", skipped) % {
                "count": skipped
            }
        lines = []
        shown = audience.get("recipients") or []
        for entry in shown:
            line = entry.get("email", "")
            if entry.get("owner"):
                line += f" ({entry['owner']})"
            rows = entry.get("rows")
            if rows is not None:
                line += ": " + ngettext("%(count)s row", "%(count)s rows", rows) % {"count": rows}
            lines.append(line)
        if mails > len(shown):
            more = mails - len(shown)
            lines.append(
                ngettext("… and %(count)s more", "… and %(count)s more", more) % {"count": more}
            )
        return summary, lines

    def render_audience(self, record):
        if not record.audience:
            return "—"
        summary, lines = self._audience_lines(record.audience)
        return format_html(
            '{}<ul class="list-unstyled small mb-0">{}</ul>',
            summary,
            format_html_join("", "<li>{}</li>", ((line,) for line in lines)),
        )

    def value_audience(self, record):
        if not record.audience:
            return ""
        summary, lines = self._audience_lines(record.audience)
        return "; ".join([summary, *lines])

    def value_trigger(self, record):
        return record.get_trigger_display()

    def value_status(self, record):
        return record.get_status_display()
