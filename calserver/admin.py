"""Django admin: calServer's data read-only where a connection manages it.

inventory (a lower layer) cannot ask calserver, so this module wraps inventory's own
admin classes instead: registered after them (INSTALLED_APPS order), it replaces each
registration with a subclass that refuses adding, changing and deleting while
calServer manages the kind, and says so."""

from django.contrib import admin, messages
from django.utils.translation import gettext as _

from calserver.models import CalServerConnection, SyncRun
from calserver.selectors import is_managed
from inventory.models import Customer, CustomerContact, Instrument, Location, SupportTicket

MANAGED_MODELS = (Customer, CustomerContact, Location, Instrument, SupportTicket)


def managed_label(model) -> bool:
    return is_managed(model._meta.label_lower)


class ManagedByCalServerMixin:
    """Read-only while calServer manages the model (shown, not editable)."""

    def has_add_permission(self, request, *args):
        return not managed_label(self.model) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return not managed_label(self.model) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not managed_label(self.model) and super().has_delete_permission(request, obj)

    def _say_managed(self, request):
        if managed_label(self.model):
            messages.info(request, _("Managed by calServer: changes are made in calServer."))

    def changelist_view(self, request, extra_context=None):
        self._say_managed(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET":
            self._say_managed(request)
        return super().changeform_view(request, object_id, form_url, extra_context)


def _wrap_inventory_admins() -> None:
    for model in MANAGED_MODELS:
        current = admin.site._registry.get(model)
        base = type(current) if current is not None else admin.ModelAdmin
        if current is not None:
            admin.site.unregister(model)
        inlines = [
            type(inline.__name__, (ManagedByCalServerMixin, inline), {})
            for inline in getattr(base, "inlines", [])
        ]
        admin.site.register(
            model,
            type(base.__name__, (ManagedByCalServerMixin, base), {"inlines": inlines}),
        )


_wrap_inventory_admins()


@admin.register(CalServerConnection)
class CalServerConnectionAdmin(admin.ModelAdmin):
    """Read-only here (the page under /calserver/ edits it): the admin would render the
    encrypted fields' plaintext into its form."""

    list_display = ("base_url", "api_version", "sync_enabled", "tested_at")
    fields = ("base_url", "api_version", "sync_enabled", "sync_interval_minutes", "tested_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "status", "created", "updated", "rejected", "last_error")
    list_filter = ("status",)
    readonly_fields = [f.name for f in SyncRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
