"""The Log section's lists, shown as tabs: its own events first, then lists that other
sections keep themselves and show under the Log (the outbox's delivery attempts are read
where they are stored instead of being copied per attempt). A section adds its tab with
`register_log_tab(...)` in its AppConfig.ready() and lets its list view use LogTabsMixin.
"""

from django.urls import reverse
from django.utils.translation import gettext_lazy
from django_tables2.paginators import LazyPaginator

LIST_TITLE = gettext_lazy("Log")

# key -> (title, URL name), in the order shown
_TABS: dict[str, tuple[str, str]] = {"events": (LIST_TITLE, "maillog:list")}


def register_log_tab(key: str, title: str, url_name: str) -> None:
    _TABS[key] = (title, url_name)


class LogTabsMixin:
    """For a list view of the Log: its template with the tabs, the current one active."""

    template_name = "maillog/list.html"
    tab = ""
    # Millions of rows: whether a next page exists is enough; a COUNT(*) is not cheap.
    paginator_class = LazyPaginator

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tabs"] = [
            (key, title, reverse(url_name)) for key, (title, url_name) in _TABS.items()
        ]
        context["active_tab"] = self.tab
        return context
