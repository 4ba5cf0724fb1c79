from urllib.parse import urlencode

from calmail.common.lists import CalmailListView
from maillog.filters import LogEntryFilter
from maillog.models import Category, LogEntry
from maillog.selectors import VIEW_PERMISSION, log_entry_list
from maillog.tables import LogEntryTable
from maillog.tabs import LIST_TITLE, LogTabsMixin


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

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # The page says that sign-ins are left out (LogEntryFilter), and how to see them.
        if not self.request.GET.get("category"):
            context["sign_ins_url"] = "?" + urlencode({"category": Category.SIGN_IN})
        return context
