"""The list-page pattern every section uses: filter + table + pagination + export + bulk."""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View
from django_filters.views import FilterView
from django_tables2 import RequestConfig, SingleTableMixin

from calmail.common.columns import column_choice_reset, column_choice_save, saved_columns
from calmail.common.export import EXPORT_FORMATS, csv_response, export_rows, xlsx_response
from calmail.common.roles import ADMINISTRATOR, ROLE_NAMES
from calmail.common.tables import table_for_key

NO_TEAM_NOTICE = gettext_lazy("You are not in any team yet — ask an administrator.")


class ExportMixin:
    """`?_export=csv|xlsx` returns the filtered, ordered rows instead of the page."""

    export_param = "_export"
    export_name = "export"

    def render_to_response(self, context, **response_kwargs):
        export_format = self.request.GET.get(self.export_param)
        if export_format in EXPORT_FORMATS:
            return self.export(export_format)
        return super().render_to_response(context, **response_kwargs)

    def export(self, export_format: str):
        table = self.get_table_class()(data=self.get_table_data(), **self.get_table_kwargs())
        RequestConfig(self.request, paginate=False).configure(table)
        rows = export_rows(table)
        if export_format == "csv":
            return csv_response(rows, filename=self.export_name)
        return xlsx_response(rows, filename=self.export_name, sheet_title=str(self.title))


class CalmailListView(PermissionRequiredMixin, ExportMixin, SingleTableMixin, FilterView):
    """Base list page. Subclasses set model, filterset_class, table_class, permission_required,
    title, and optionally create_url_name (with create_permission and create_label) and
    bulk_actions."""

    template_name = "common/list.html"
    title = ""
    create_url_name: str | None = None
    create_permission: str | None = None
    create_label = gettext_lazy("New")
    bulk_url_name: str | None = None
    bulk_actions: dict = {}
    raise_exception = True

    def get_table_kwargs(self):
        kwargs = super().get_table_kwargs()
        kwargs["user"] = self.request.user
        if not self.allowed_bulk_actions():
            kwargs["exclude"] = ("selection",)
        return kwargs

    def get_table(self, **kwargs):
        table = super().get_table(**kwargs)
        # The page only: export() builds its own table, which keeps every column.
        if hasattr(table, "choose_columns"):
            table.choose_columns(
                saved_columns(user=self.request.user, table_key=table.column_key())
            )
        # An empty table says whether nothing exists yet or the filter hides it all; with
        # nothing yet, whoever may create gets the way to the first one.
        if self.filters_active():
            table.empty_text = _("No entries match.")
        elif create_url := self.create_url():
            table.empty_text = format_html(
                '{} <a class="btn btn-primary btn-sm ms-2" href="{}">'
                '<i class="bi bi-plus-lg" aria-hidden="true"></i> {}</a>',
                _("No entries yet."),
                create_url,
                self.create_label,
            )
        else:
            table.empty_text = _("No entries yet.")
        return table

    def filters_active(self) -> bool:
        return any(
            value
            for key, value in self.request.GET.items()
            if key not in {"page", "sort", "per_page"}
        )

    def column_chooser(self, table) -> dict | None:
        """What the column chooser in the list header offers: each data column, ticked
        if shown."""
        if not hasattr(table, "choosable_columns"):
            return None
        bound = table.columns.columns
        return {
            "url": reverse("common:columns"),
            "key": table.column_key(),
            "columns": [
                {"name": name, "header": bound[name].header, "visible": bound[name].visible}
                for name in table.choosable_columns()
            ],
        }

    def hidden_filtered_columns(self, table) -> list[str]:
        """The headers of hidden columns that a filter narrows (set in the URL, say), so
        no row is left out without the page saying why."""
        filterset = getattr(self, "filterset", None)
        if filterset is None or not hasattr(table, "hidden_columns"):
            return []
        hidden = set(table.hidden_columns())
        headers = []
        for name in filterset.filters:
            column = table.filter_columns.get(name, name)
            if column not in hidden or not _has_value(filterset.form[name].value()):
                continue
            header = str(table.columns.columns[column].header)
            if header not in headers:
                headers.append(header)
        return headers

    def create_url(self) -> str | None:
        """The create page's address, if the section has one and the user may add."""
        user = self.request.user
        if not self.create_url_name:
            return None
        if self.create_permission and not user.has_perm(self.create_permission):
            return None
        return reverse(self.create_url_name)

    def team_notice(self) -> str:
        """Why a user in no team sees so little (administrators see everything)."""
        user = self.request.user
        if user.is_superuser:
            return ""
        # One query for both: the user's role and whether any group of theirs is a team.
        names = set(user.groups.values_list("name", flat=True))
        if ADMINISTRATOR in names or names - set(ROLE_NAMES):
            return ""
        return NO_TEAM_NOTICE

    def get_table_pagination(self, table):
        # The table caps whatever size is asked for (CalmailTable.paginate). A view of a
        # huge table sets paginator_class = LazyPaginator: no COUNT(*) per page view.
        return {"per_page": settings.CALMAIL_PAGE_SIZE, "paginator_class": self.paginator_class}

    def allowed_bulk_actions(self) -> dict:
        return allowed_actions(self.bulk_actions, self.request.user)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=self.title,
            create_url=self.create_url(),
            create_label=self.create_label,
            team_notice=self.team_notice(),
            bulk_url=reverse(self.bulk_url_name) if self.bulk_url_name else None,
            bulk_actions=self.allowed_bulk_actions(),
            export_formats=EXPORT_FORMATS,
            query_without_page=_query_without(self.request, {"page", "_export"}),
            filters_active=self.filters_active(),
        )
        table = context.get("table")
        if table is not None:
            context.update(
                column_chooser=self.column_chooser(table),
                hidden_filtered_columns=self.hidden_filtered_columns(table),
            )
        return context


def _has_value(value) -> bool:
    # A range filter's value is a pair of inputs; either one set filters.
    if isinstance(value, list | tuple):
        return any(_has_value(item) for item in value)
    return value not in (None, "")


def _query_without(request, keys: set[str]) -> str:
    query = request.GET.copy()
    for key in keys:
        query.pop(key, None)
    return query.urlencode()


def _next_url(request, fallback: str) -> str:
    """The page to go back to, if it is one of ours (no open redirect)."""
    candidate = request.POST.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate,
        allowed_hosts={request.get_host()},
        require_https=request.is_secure(),
    ):
        return candidate
    return fallback


class ColumnChoiceView(View):
    """POST from a list page's column chooser: remember the ticked columns (or go back to
    the defaults) for this user and table, then return to the list."""

    http_method_names = ["post"]

    def post(self, request):
        table = table_for_key(request.POST.get("table", ""))
        if table is None:
            raise Http404
        key = table.column_key()
        if request.POST.get("reset"):
            column_choice_reset(user=request.user, table_key=key)
        else:
            # Names the table does not have are dropped, not stored.
            columns = table.known_columns(request.POST.getlist("columns"))
            if columns:
                column_choice_save(user=request.user, table_key=key, columns=columns)
            else:
                messages.warning(request, _("Choose at least one column."))
        return HttpResponseRedirect(_next_url(request, reverse("home")))


@dataclass(frozen=True)
class BulkResult:
    done: int
    refused: list[tuple[object, str]] = field(default_factory=list)


@dataclass(frozen=True)
class BulkAction:
    """A bulk action on selected rows.

    `refusal(obj)` says why one object would be left out (None if it is fine); it is
    shown on the confirmation page. `run(objects, user)` does the work through services
    and returns a BulkResult.
    """

    label: str
    permission: str
    run: Callable[[list, object], BulkResult]
    refusal: Callable[[object], str | None] = lambda obj: None
    danger: bool = False
    done_message: str = ""


def allowed_actions(actions: dict, user) -> dict:
    return {name: action for name, action in actions.items() if user.has_perm(action.permission)}


class BulkActionView(View):
    """POST from a list page: first shows a confirmation, then (confirm=1) runs the action.

    Subclasses set bulk_actions, list_url_name and get_queryset() (the rows the user may
    see: selecting an id outside it has no effect).
    """

    bulk_actions: dict = {}
    list_url_name = ""
    template_name = "common/bulk_confirm.html"
    max_selection = 1000

    def get_queryset(self):
        raise NotImplementedError

    def post(self, request):
        actions = allowed_actions(self.bulk_actions, request.user)
        name = request.POST.get("action", "")
        if name not in self.bulk_actions:
            messages.error(request, _("Choose an action for the selected rows."))
            return self._back()
        if name not in actions:
            raise PermissionDenied
        action = actions[name]
        ids = [value for value in request.POST.getlist("selection") if value.isdigit()][
            : self.max_selection
        ]
        objects = list(self.get_queryset().filter(pk__in=ids))
        if not objects:
            messages.warning(request, _("No rows were selected."))
            return self._back()
        if request.POST.get("confirm") != "1":
            rows = [(obj, action.refusal(obj)) for obj in objects]
            return render(
                request,
                self.template_name,
                {
                    "action_name": name,
                    "action": action,
                    "rows": rows,
                    "acceptable": sum(1 for _obj, reason in rows if reason is None),
                    "next": self._next_url(),
                    "list_url": reverse(self.list_url_name),
                    "title": action.label,
                },
            )
        result = action.run(objects, request.user)
        if result.done:
            messages.success(
                request,
                action.done_message % {"count": result.done}
                if action.done_message
                else ngettext("%(count)d row done.", "%(count)d rows done.", result.done)
                % {"count": result.done},
            )
        for obj, reason in result.refused:
            messages.warning(
                request,
                _("%(object)s was left out: %(reason)s") % {"object": obj, "reason": reason},
            )
        return self._back()

    def _next_url(self) -> str:
        return _next_url(self.request, reverse(self.list_url_name))

    def _back(self):
        return HttpResponseRedirect(self._next_url())
