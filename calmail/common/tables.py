"""The base table every section's list page uses, and its shared columns."""

from collections.abc import Iterable
from dataclasses import dataclass

import django_tables2 as tables
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class MenuItem:
    """One entry of a row menu: a link to a page (mutations confirm on that page)."""

    label: str
    url: str
    icon: str = ""
    danger: bool = False


class SelectionColumn(tables.CheckBoxColumn):
    """Row checkboxes for bulk actions.

    The inputs belong to the page's bulk form through the HTML `form` attribute, so the
    table needs no enclosing form and row menus stay free of nested forms.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("accessor", "pk")
        kwargs.setdefault("exclude_from_export", True)
        kwargs.setdefault(
            "attrs",
            {
                "th__input": {
                    "data-select-all": "selection",
                    "class": "form-check-input",
                    "aria-label": _("Select all rows"),
                },
                "td__input": {
                    "form": "bulk-form",
                    "class": "form-check-input",
                    "aria-label": _("Select row"),
                },
            },
        )
        super().__init__(**kwargs)


class RowMenuColumn(tables.Column):
    """The "Actions" column: a dropdown built by the table's get_row_menu()."""

    def __init__(self, **kwargs):
        kwargs.setdefault("verbose_name", _("Actions"))
        kwargs.setdefault("empty_values", ())
        kwargs.setdefault("orderable", False)
        kwargs.setdefault("exclude_from_export", True)
        kwargs.setdefault("attrs", {"td": {"class": "text-end"}, "th": {"class": "text-end"}})
        super().__init__(accessor="pk", **kwargs)

    def render(self, record, table):
        items = table.get_row_menu(record)
        if not items:
            return ""
        # Built here rather than with a template: a page has a menu on every row, and a
        # template render per row was a fifth of the outbox page's time.
        entries = format_html_join(
            "",
            '<li><a class="dropdown-item{}" href="{}">{}{}</a></li>',
            (
                (
                    " text-danger" if item.danger else "",
                    item.url,
                    format_html('<i class="bi bi-{}" aria-hidden="true"></i> ', item.icon)
                    if item.icon
                    else "",
                    item.label,
                )
                for item in items
            ),
        )
        return format_html(
            '<div class="dropdown"><button class="btn btn-sm btn-outline-secondary '
            'dropdown-toggle" type="button" data-bs-toggle="dropdown" aria-expanded="false" '
            'data-bs-popper-config=\'{{"strategy":"fixed"}}\'>'
            '<i class="bi bi-three-dots" aria-hidden="true"></i>'
            '<span class="visually-hidden">{}</span></button>'
            '<ul class="dropdown-menu dropdown-menu-end">{}</ul></div>',
            _("Actions for %(record)s") % {"record": record},
            entries,
        )


class YesNoColumn(tables.Column):
    """A boolean as an icon on the page and as a translated yes/no in exports."""

    def __init__(self, **kwargs):
        kwargs.setdefault("empty_values", ())
        kwargs.setdefault("attrs", {"td": {"class": "text-center"}})
        super().__init__(**kwargs)

    def render(self, value):
        if value:
            return format_html(
                '<i class="bi bi-check-lg text-success" aria-hidden="true"></i><span class="visually-hidden">{}</span>',
                _("yes"),
            )
        return format_html(
            '<i class="bi bi-dash text-body-tertiary" aria-hidden="true"></i><span class="visually-hidden">{}</span>',
            _("no"),
        )

    def value(self, value):
        return str(_("yes") if value else _("no"))


# Controls, not data: the column chooser neither offers nor hides them.
FIXED_COLUMN_TYPES = (SelectionColumn, RowMenuColumn)
# Every table by its key, so the chooser's endpoint can check the column names it is sent.
_TABLES: dict[str, type["CalmailTable"]] = {}


def table_for_key(key: str) -> type["CalmailTable"] | None:
    return _TABLES.get(key)


class CalmailTable(tables.Table):
    """Base table: Bootstrap look, knows the requesting user for row menus.

    A list page shows the columns the user chose (calmail.common.columns), or else
    `default_columns`; exports always carry every column.
    """

    # The data columns a page shows until the user chooses; None shows them all.
    default_columns: tuple[str, ...] | None = None
    # Filters named otherwise than the column they narrow ({filter name: column name}),
    # so the page can say that a filter on a hidden column is active.
    filter_columns: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _TABLES[cls.column_key()] = cls

    def __init__(self, *args, user=None, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    @classmethod
    def column_key(cls) -> str:
        """The name a user's column choice is stored under: "mailbox.OutboxTable"."""
        return f"{cls.__module__.partition('.')[0]}.{cls.__name__}"

    @classmethod
    def choosable_columns(cls) -> list[str]:
        """The data columns, in the table's order."""
        sequence = [name for name in cls._meta.sequence if name in cls.base_columns]
        names = sequence + [name for name in cls.base_columns if name not in sequence]
        return [
            name for name in names if not isinstance(cls.base_columns[name], FIXED_COLUMN_TYPES)
        ]

    @classmethod
    def known_columns(cls, names: Iterable[str]) -> list[str]:
        """The names that are data columns of this table, in the table's order."""
        wanted = set(names)
        return [name for name in cls.choosable_columns() if name in wanted]

    def choose_columns(self, chosen: Iterable[str] | None) -> None:
        """Hide the data columns not chosen; None (or nothing known) means the defaults."""
        choosable = self.choosable_columns()
        visible = set(self.known_columns(chosen or ()))
        if not visible:
            visible = set(self.default_columns or choosable)
        for name in choosable:
            if name not in visible:
                self.columns.hide(name)

    def hidden_columns(self) -> list[str]:
        return [name for name in self.choosable_columns() if not self.columns.columns[name].visible]

    def get_row_menu(self, record) -> list[MenuItem]:
        return []

    @property
    def order_by(self):
        return tables.Table.order_by.fget(self)

    @order_by.setter
    def order_by(self, value):
        tables.Table.order_by.fset(self, value)
        # Rows with equal sort values come back in any order: without a unique last key a
        # row can show on two pages, or on none. The primary key, in the same direction.
        data = getattr(self.data, "data", None)
        if not isinstance(data, QuerySet):
            return
        fields = data.query.order_by
        if not fields or not all(isinstance(field, str) for field in fields):
            return
        if any(field.lstrip("-") in ("pk", "id") for field in fields):
            return
        self.data.data = data.order_by(*fields, "-pk" if fields[-1].startswith("-") else "pk")

    def paginate(self, *args, per_page=None, **kwargs):
        # Capped here, whatever asked for it (?per_page= in the URL included), so a
        # crafted URL cannot make one page render the whole table.
        limit = settings.CALMAIL_MAX_PAGE_SIZE
        per_page = max(1, min(per_page or settings.CALMAIL_PAGE_SIZE, limit))
        return super().paginate(*args, per_page=per_page, **kwargs)

    class Meta:
        template_name = "django_tables2/bootstrap5-responsive.html"
        attrs = {"class": "table table-sm table-hover align-middle calmail-table"}
        empty_text = _("No entries match.")


class LocalDateTimeColumn(tables.Column):
    """A point in time in the installation's time zone; exports keep the datetime itself."""

    def __init__(self, **kwargs):
        kwargs.setdefault("attrs", {"td": {"class": "nowrap"}})
        super().__init__(**kwargs)

    def render(self, value):
        return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")

    def value(self, value):
        return value
