from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from calmail.common.forms import add_service_errors
from calmail.common.lists import CalmailListView
from calmail.common.sections import (
    SectionBulkView,
    SectionDeleteView,
    SectionDuplicateView,
    SectionFormView,
    SectionObjectMixin,
    bulk_delete_action,
)
from inventory import services
from inventory.filters import (
    CustomerFilter,
    DistributionListFilter,
    InstrumentFilter,
    SystemAddressFilter,
)
from inventory.forms import DistributionListForm, DuplicateForm, SystemAddressForm
from inventory.models import Customer, DistributionList, Instrument, SystemAddress
from inventory.recipients import resolve_selection, search_recipients
from inventory.selectors import (
    customer_list,
    distribution_list_detail,
    distribution_list_list,
    has_role,
    instrument_list,
    system_address_list,
    visible_distribution_lists,
)
from inventory.tables import (
    CustomerTable,
    DistributionListTable,
    InstrumentTable,
    SystemAddressTable,
)

LISTS_TITLE = gettext_lazy("Distribution lists")
SYSTEM_TITLE = gettext_lazy("System addresses")
CUSTOMERS_TITLE = gettext_lazy("Customers")
INSTRUMENTS_TITLE = gettext_lazy("Instruments")
MAX_SEARCH_LIMIT = 50


# --- distribution lists -------------------------------------------------------------------

LIST_BULK_ACTIONS = {
    "delete": bulk_delete_action(
        service=services.distribution_list_delete,
        keyword="distribution_list",
        permission="inventory.delete_distributionlist",
        done_message=ngettext_lazy(
            "%(count)d distribution list deleted.", "%(count)d distribution lists deleted.", "count"
        ),
    )
}


class DistributionListListView(CalmailListView):
    permission_required = "inventory.view_distributionlist"
    model = DistributionList
    table_class = DistributionListTable
    filterset_class = DistributionListFilter
    title = LISTS_TITLE
    export_name = "distribution-lists"
    create_url_name = "inventory:distributionlist_create"
    create_label = gettext_lazy("New distribution list")
    create_permission = "inventory.add_distributionlist"
    bulk_url_name = "inventory:distributionlist_bulk"
    bulk_actions = LIST_BULK_ACTIONS

    def get_queryset(self):
        return distribution_list_list(user=self.request.user)


class DistributionListBulkView(SectionBulkView):
    permission_required = "inventory.view_distributionlist"
    bulk_actions = LIST_BULK_ACTIONS
    list_url_name = "inventory:distributionlist_list"

    def get_queryset(self):
        return visible_distribution_lists(user=self.request.user)


class DistributionListMixin(SectionObjectMixin):
    """Loads the list from the URL, limited to the lists the user may see (else 404)."""

    list_url_name = "inventory:distributionlist_list"
    list_title = LISTS_TITLE

    def get_distribution_list(self) -> DistributionList:
        return self.object_from_url(visible_distribution_lists(user=self.request.user))


class DistributionListDetailView(DistributionListMixin, View):
    permission_required = "inventory.view_distributionlist"

    def get(self, request, pk):
        try:
            distribution_list = distribution_list_detail(user=request.user, pk=pk)
        except DistributionList.DoesNotExist:
            raise Http404 from None
        resolution = resolve_selection([f"list:{pk}"])
        return render(
            request,
            "inventory/distributionlist_detail.html",
            self.base_context(
                title=distribution_list.name,
                distribution_list=distribution_list,
                resolution=resolution,
            ),
        )


class DistributionListFormView(DistributionListMixin, SectionFormView):
    """Create (no pk) and edit (pk): the same form, the matching service."""

    add_permission = "inventory.add_distributionlist"
    change_permission = "inventory.change_distributionlist"

    def get_form(self, data=None, distribution_list=None):
        return DistributionListForm(
            data,
            user=self.request.user,
            distribution_list=distribution_list,
            cancel_url=reverse("inventory:distributionlist_list"),
        )

    def render_form(self, form, distribution_list=None):
        title = (
            _("Edit distribution list %(name)s") % {"name": distribution_list.name}
            if distribution_list
            else _("New distribution list")
        )
        return self.render_form_page(form, title)

    def get(self, request, **kwargs):
        distribution_list = self.get_distribution_list() if "pk" in kwargs else None
        return self.render_form(
            self.get_form(distribution_list=distribution_list), distribution_list
        )

    def post(self, request, **kwargs):
        distribution_list = self.get_distribution_list() if "pk" in kwargs else None
        form = self.get_form(request.POST, distribution_list=distribution_list)
        if form.is_valid():
            try:
                if distribution_list:
                    services.distribution_list_update(
                        distribution_list=distribution_list, **form.service_values()
                    )
                    messages.success(
                        request, _("%(name)s saved.") % {"name": distribution_list.name}
                    )
                else:
                    distribution_list = services.distribution_list_create(**form.service_values())
                    messages.success(
                        request, _("%(name)s created.") % {"name": distribution_list.name}
                    )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                return redirect("inventory:distributionlist_detail", pk=distribution_list.pk)
        return self.render_form(form, self.get_distribution_list() if "pk" in kwargs else None)


class DistributionListDuplicateView(DistributionListMixin, SectionDuplicateView):
    permission_required = "inventory.add_distributionlist"
    update_url_name = "inventory:distributionlist_update"

    def get_source(self):
        return self.get_distribution_list()

    def get_initial(self, source):
        return {"name": services.copy_name(DistributionList, source.name)}

    def get_form(self, source, *, data=None, initial=None):
        return DuplicateForm(
            data,
            model=DistributionList,
            initial=initial,
            cancel_url=reverse("inventory:distributionlist_list"),
        )

    def duplicate(self, source, form):
        return services.distribution_list_duplicate(
            distribution_list=source, name=form.cleaned_data["name"]
        )


class DistributionListDeleteView(DistributionListMixin, SectionDeleteView):
    permission_required = "inventory.delete_distributionlist"
    question = gettext_lazy("Delete the distribution list %(name)s? This cannot be undone.")
    explanation = gettext_lazy("Its members (users, customers) stay; only the list goes.")

    def get_target(self):
        return self.get_distribution_list()

    def delete(self, obj):
        services.distribution_list_delete(distribution_list=obj)


# --- system addresses ---------------------------------------------------------------------

SYSTEM_BULK_ACTIONS = {
    "delete": bulk_delete_action(
        service=services.system_address_delete,
        keyword="system_address",
        permission="inventory.delete_systemaddress",
        done_message=ngettext_lazy(
            "%(count)d system address deleted.", "%(count)d system addresses deleted.", "count"
        ),
    )
}


class SystemAddressListView(CalmailListView):
    permission_required = "inventory.view_systemaddress"
    model = SystemAddress
    table_class = SystemAddressTable
    filterset_class = SystemAddressFilter
    title = SYSTEM_TITLE
    export_name = "system-addresses"
    create_url_name = "inventory:systemaddress_create"
    create_label = gettext_lazy("New system address")
    create_permission = "inventory.add_systemaddress"
    bulk_url_name = "inventory:systemaddress_bulk"
    bulk_actions = SYSTEM_BULK_ACTIONS

    def get_queryset(self):
        return system_address_list(user=self.request.user)


class SystemAddressBulkView(SectionBulkView):
    permission_required = "inventory.view_systemaddress"
    bulk_actions = SYSTEM_BULK_ACTIONS
    list_url_name = "inventory:systemaddress_list"

    def get_queryset(self):
        return system_address_list(user=self.request.user)


class SystemAddressMixin(SectionObjectMixin):
    """Loads the system address from the URL, limited to those the user may see (else 404)."""

    list_url_name = "inventory:systemaddress_list"
    list_title = SYSTEM_TITLE

    def get_system_address(self) -> SystemAddress:
        return self.object_from_url(system_address_list(user=self.request.user))


class SystemAddressFormView(SystemAddressMixin, SectionFormView):
    add_permission = "inventory.add_systemaddress"
    change_permission = "inventory.change_systemaddress"

    def get_form(self, data=None):
        instance = self.get_system_address() if "pk" in self.kwargs else SystemAddress()
        return SystemAddressForm(
            data, instance=instance, cancel_url=reverse("inventory:systemaddress_list")
        )

    def render_form(self, form):
        title = (
            _("Edit system address %(name)s") % {"name": form.instance.name}
            if form.instance.pk
            else _("New system address")
        )
        return self.render_form_page(form, title)

    def create(self, form):
        return services.system_address_create(values=form.service_values())

    def update(self, obj, form):
        services.system_address_update(system_address=obj, values=form.service_values())

    def saved_redirect(self, obj):
        return redirect("inventory:systemaddress_list")


class SystemAddressDuplicateView(SystemAddressMixin, SectionDuplicateView):
    permission_required = "inventory.add_systemaddress"
    update_url_name = "inventory:systemaddress_update"

    def get_source(self):
        return self.get_system_address()

    def get_initial(self, source):
        return {"name": services.copy_name(SystemAddress, source.name)}

    def get_form(self, source, *, data=None, initial=None):
        return DuplicateForm(
            data,
            model=SystemAddress,
            initial=initial,
            cancel_url=reverse("inventory:systemaddress_list"),
        )

    def duplicate(self, source, form):
        return services.system_address_duplicate(
            system_address=source, name=form.cleaned_data["name"]
        )


class SystemAddressDeleteView(SystemAddressMixin, SectionDeleteView):
    permission_required = "inventory.delete_systemaddress"
    question = gettext_lazy("Delete the system address %(name)s? This cannot be undone.")

    def get_target(self):
        return self.get_system_address()

    def delete(self, obj):
        services.system_address_delete(system_address=obj)


# --- calServer data (read-only) -----------------------------------------------------------


class DataListView(CalmailListView):
    """Customers and instruments: one navigation entry, a tab per list."""

    template_name = "inventory/data_list.html"
    tab = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context["tabs"] = [
            {
                "key": "customers",
                "label": CUSTOMERS_TITLE,
                "url": reverse("inventory:customer_list"),
                "active": self.tab == "customers",
            },
            {
                "key": "instruments",
                "label": INSTRUMENTS_TITLE,
                "url": reverse("inventory:instrument_list"),
                "active": self.tab == "instruments",
            },
        ]
        context["tabs"] = [
            tab
            for tab in context["tabs"]
            if user.has_perm(f"inventory.view_{tab['key'].removesuffix('s')}")
        ]
        return context


class CustomerListView(DataListView):
    permission_required = "inventory.view_customer"
    model = Customer
    table_class = CustomerTable
    filterset_class = CustomerFilter
    title = CUSTOMERS_TITLE
    export_name = "customers"
    tab = "customers"

    def get_queryset(self):
        return customer_list(user=self.request.user)


class InstrumentListView(DataListView):
    permission_required = "inventory.view_instrument"
    model = Instrument
    table_class = InstrumentTable
    filterset_class = InstrumentFilter
    title = INSTRUMENTS_TITLE
    export_name = "instruments"
    tab = "instruments"

    def get_queryset(self):
        return instrument_list(user=self.request.user)


def data_index(request):
    """The navigation entry of customers and instruments opens the customers."""
    return redirect("inventory:customer_list")


# --- recipient autocomplete ---------------------------------------------------------------


@never_cache
@require_GET
def recipient_search(request):
    """JSON for recipient autocomplete: ?q=text&limit=n (at most 50); &audiences=1 also
    offers the audiences (action forms).

    {"results": [{"token": "customer:5", "label": "1001 · Muster GmbH", "kind": "customer",
    "kind_label": "Customer", "detail": "einkauf@muster.example"}, …]}
    """
    if not has_role(request.user):
        return JsonResponse({"error": _("You have no access to recipients.")}, status=403)
    try:
        limit = max(1, min(int(request.GET.get("limit", 20)), MAX_SEARCH_LIMIT))
    except ValueError:
        limit = 20
    choices = search_recipients(
        request.GET.get("q", ""),
        user=request.user,
        limit=limit,
        audiences=request.GET.get("audiences") == "1",
    )
    return JsonResponse({"results": [choice.as_dict() for choice in choices]})
