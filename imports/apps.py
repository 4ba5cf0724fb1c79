from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry
from inventory.navigation import DATA_MENU


class ImportsConfig(AppConfig):
    """Spreadsheet import of calServer data (customers and contacts, locations,
    instruments, tickets) and users: mapping templates, dry run, batched upsert."""

    name = "imports"
    verbose_name = _("Import")
    nav_entries = (
        NavEntry(
            key="imports",
            label=_("Import"),
            url_name="imports:index",
            # Granted to administrators only (migration 0002); views check the role too.
            permission="imports.add_importrun",
            icon="upload",
            order=75,
            group=DATA_MENU,
        ),
    )

    def ready(self):
        # Imported here: maillog's modules load models, ready only once the registry is.
        from maillog.links import register_object_link

        register_object_link(
            "imports.importrun", "imports:run", permission="imports.view_importrun"
        )
