from urllib.parse import urlencode

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from actions.selectors import VIEW_RUNS
from mailbox.models import Status
from mailbox.selectors import VIEW_PERMISSION
from overview import charts, selectors

PERIOD_LABELS = {
    "today": gettext_lazy("Today"),
    "week": gettext_lazy("7 days"),
    "month": gettext_lazy("30 days"),
}


def outbox_url(**query) -> str:
    """The outbox list filtered as mailbox.filters.OutboxFilter reads its query."""
    return f"{reverse('mailbox:list')}?{urlencode(query)}" if query else reverse("mailbox:list")


def _bar_title(when: str, sent: int, failed: int) -> str:
    return _("%(when)s: %(sent)s sent, %(failed)s failed") % {
        "when": when,
        "sent": sent,
        "failed": failed,
    }


def day_chart(days, series) -> charts.Chart:
    return charts.bar_chart(
        days,
        series.sent if series else {},
        series.failed if series else {},
        title=lambda day, sent, failed: _bar_title(date_format(day, "DATE_FORMAT"), sent, failed),
        label=lambda day: date_format(day, "MONTH_DAY_FORMAT"),
        label_every=7,
    )


def hour_chart(hours, series) -> charts.Chart:
    def local(key):
        return timezone.localtime(key)

    return charts.bar_chart(
        [charts.hour_key(hour) for hour in hours],
        series.sent if series else {},
        series.failed if series else {},
        title=lambda key, sent, failed: _bar_title(
            date_format(local(key), "SHORT_DATETIME_FORMAT"), sent, failed
        ),
        label=lambda key: time_format(local(key), "TIME_FORMAT"),
        label_every=6,
    )


class OverviewView(PermissionRequiredMixin, TemplateView):
    """The home page: the outbox in figures, what needs attention, the next runs."""

    permission_required = VIEW_PERMISSION
    template_name = "overview/index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        data = selectors.overview(user=self.request.user)
        periods = data.periods
        status_rows = [
            {
                "status": status,
                "label": label,
                "cells": [
                    {
                        "count": data.mails.by_status[status][period.key],
                        "url": outbox_url(
                            status=status, created_at_min=period.first_day.isoformat()
                        ),
                    }
                    for period in periods
                ],
            }
            for status, label in Status.choices
        ]
        total_cells = [
            {
                "count": data.mails.totals[period.key],
                "url": outbox_url(created_at_min=period.first_day.isoformat()),
            }
            for period in periods
        ]
        month_start = next(p for p in periods if p.key == "month").first_day.isoformat()
        hourly = {series.configuration_id: series for series in data.traffic.per_hour}
        chart_pairs = [
            {
                "name": series.name,
                "configuration_id": series.configuration_id,
                "days": day_chart(data.traffic.days, series),
                "hours": hour_chart(data.traffic.hours, hourly.get(series.configuration_id)),
            }
            for series in data.traffic.per_day
        ]
        context.update(
            title=_("Overview"),
            overview=data,
            period_labels=[PERIOD_LABELS[p.key] for p in periods],
            status_rows=status_rows,
            total_cells=total_cells,
            failed_url=outbox_url(status=Status.FAILED, created_at_min=month_start),
            deferred_url=outbox_url(status=Status.DEFERRED, created_at_min=month_start),
            chart_pairs=chart_pairs,
            can_view_runs=self.request.user.has_perm(VIEW_RUNS),
        )
        return context
