from calmail.common.lists import CalmailListView
from maillog.filters import LogEntryFilter
from maillog.models import LogEntry
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
