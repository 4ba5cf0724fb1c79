from django.urls import reverse
from django.utils.translation import gettext_lazy
from django_tables2.paginators import LazyPaginator

from calmail.common.lists import CalmailListView
from maillog.filters import DeliveryAttemptFilter, LogEntryFilter
from maillog.models import LogEntry
from maillog.selectors import VIEW_PERMISSION, delivery_attempt_list, log_entry_list
from maillog.tables import DeliveryAttemptTable, LogEntryTable

LIST_TITLE = gettext_lazy("Log")
ATTEMPTS_TITLE = gettext_lazy("Delivery attempts")


class LogTabsMixin:
    """The Log section has two lists: events (our own entries) and the outbox's delivery
    attempts, which are read where they are stored instead of being copied per attempt."""

    template_name = "maillog/list.html"
    tab = ""
    # Millions of rows: whether a next page exists is enough; a COUNT(*) is not cheap.
    paginator_class = LazyPaginator

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tabs"] = [
            ("events", LIST_TITLE, reverse("maillog:list")),
            ("attempts", ATTEMPTS_TITLE, reverse("maillog:attempts")),
        ]
        context["active_tab"] = self.tab
        return context


class LogEntryListView(LogTabsMixin, CalmailListView):
    permission_required = VIEW_PERMISSION
    model = LogEntry
    table_class = LogEntryTable
    filterset_class = LogEntryFilter
    title = LIST_TITLE
    export_name = "log"
    tab = "events"

    def get_queryset(self):
        return log_entry_list(user=self.request.user).select_related("content_type")


class DeliveryAttemptListView(LogTabsMixin, CalmailListView):
    permission_required = VIEW_PERMISSION
    table_class = DeliveryAttemptTable
    filterset_class = DeliveryAttemptFilter
    title = ATTEMPTS_TITLE
    export_name = "delivery-attempts"
    tab = "attempts"

    def get_queryset(self):
        return (
            delivery_attempt_list(user=self.request.user)
            .select_related("smtp_configuration", "message")
            .only(
                "started_at",
                "duration_ms",
                "worker",
                "outcome",
                "reply_code",
                "reply_text",
                "message__subject",
                "message__recipient",
                "smtp_configuration__name",
            )
        )
