from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from calmail.common.lists import BulkAction, BulkActionView, BulkResult, CalmailListView
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


def _add_service_errors(form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its field if the form has one."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _bulk_delete(service, keyword: str):
    def run(objects, user):
        done, refused = 0, []
        for obj in objects:
            try:
                service(**{keyword: obj})
            except ValidationError as exc:
                refused.append((obj, " ".join(exc.messages)))
            else:
                done += 1
        return BulkResult(done=done, refused=refused)

    return run


# --- distribution lists -------------------------------------------------------------------

LIST_BULK_ACTIONS = {
    "delete": BulkAction(
        label=gettext_lazy("Delete"),
        permission="inventory.delete_distributionlist",
        run=_bulk_delete(services.distribution_list_delete, "distribution_list"),
        danger=True,
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
    create_permission = "inventory.add_distributionlist"
    bulk_url_name = "inventory:distributionlist_bulk"
    bulk_actions = LIST_BULK_ACTIONS

    def get_queryset(self):
        return distribution_list_list(user=self.request.user)


class DistributionListBulkView(PermissionRequiredMixin, BulkActionView):
    permission_required = "inventory.view_distributionlist"
    raise_exception = True
    bulk_actions = LIST_BULK_ACTIONS
    list_url_name = "inventory:distributionlist_list"

    def get_queryset(self):
        return visible_distribution_lists(user=self.request.user)


class DistributionListMixin(PermissionRequiredMixin):
    """Loads the list from the URL, limited to the lists the user may see (else 404)."""

    raise_exception = True

    def get_distribution_list(self) -> DistributionList:
        return get_object_or_404(
            visible_distribution_lists(user=self.request.user), pk=self.kwargs["pk"]
        )

    def base_context(self, **extra):
        return {
            "list_url": reverse("inventory:distributionlist_list"),
            "list_title": LISTS_TITLE,
            **extra,
        }


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


class DistributionListFormView(DistributionListMixin, View):
    """Create (no pk) and edit (pk): the same form, the matching service."""

    def get_permission_required(self):
        if "pk" in self.kwargs:
            return ("inventory.change_distributionlist",)
        return ("inventory.add_distributionlist",)

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
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

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
                _add_service_errors(form, exc)
            else:
                return redirect("inventory:distributionlist_detail", pk=distribution_list.pk)
        return self.render_form(form, self.get_distribution_list() if "pk" in kwargs else None)


class DistributionListDuplicateView(DistributionListMixin, View):
    permission_required = "inventory.add_distributionlist"

    def render_form(self, distribution_list, form):
        title = _("Duplicate %(name)s") % {"name": distribution_list.name}
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

    def get(self, request, pk):
        distribution_list = self.get_distribution_list()
        form = DuplicateForm(
            model=DistributionList,
            initial={"name": services.copy_name(DistributionList, distribution_list.name)},
            cancel_url=reverse("inventory:distributionlist_list"),
        )
        return self.render_form(distribution_list, form)

    def post(self, request, pk):
        distribution_list = self.get_distribution_list()
        form = DuplicateForm(
            request.POST,
            model=DistributionList,
            cancel_url=reverse("inventory:distributionlist_list"),
        )
        if form.is_valid():
            try:
                copy = services.distribution_list_duplicate(
                    distribution_list=distribution_list, name=form.cleaned_data["name"]
                )
            except ValidationError as exc:
                _add_service_errors(form, exc)
            else:
                messages.success(request, _("%(name)s created as a copy.") % {"name": copy.name})
                return redirect("inventory:distributionlist_update", pk=copy.pk)
        return self.render_form(distribution_list, form)


class DistributionListDeleteView(DistributionListMixin, View):
    permission_required = "inventory.delete_distributionlist"

    def render_page(self, distribution_list, refusal=None):
        return render(
            self.request,
            "common/confirm.html",
            self.base_context(
                title=_("Delete %(name)s") % {"name": distribution_list.name},
                question=_("Delete the distribution list %(name)s? This cannot be undone.")
                % {"name": distribution_list.name},
                explanation=_("Its members (users, customers) stay; only the list goes."),
                refusal=refusal,
                danger=True,
                confirm_label=_("Delete"),
                cancel_url=reverse("inventory:distributionlist_list"),
            ),
        )

    def get(self, request, pk):
        return self.render_page(self.get_distribution_list())

    def post(self, request, pk):
        distribution_list = self.get_distribution_list()
        name = distribution_list.name
        try:
            services.distribution_list_delete(distribution_list=distribution_list)
        except ValidationError as exc:
            return self.render_page(distribution_list, refusal=" ".join(exc.messages))
        messages.success(request, _("%(name)s deleted.") % {"name": name})
        return redirect("inventory:distributionlist_list")


# --- system addresses ---------------------------------------------------------------------

SYSTEM_BULK_ACTIONS = {
    "delete": BulkAction(
        label=gettext_lazy("Delete"),
        permission="inventory.delete_systemaddress",
        run=_bulk_delete(services.system_address_delete, "system_address"),
        danger=True,
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
    create_permission = "inventory.add_systemaddress"
    bulk_url_name = "inventory:systemaddress_bulk"
    bulk_actions = SYSTEM_BULK_ACTIONS

    def get_queryset(self):
        return system_address_list(user=self.request.user)


class SystemAddressBulkView(PermissionRequiredMixin, BulkActionView):
    permission_required = "inventory.view_systemaddress"
    raise_exception = True
    bulk_actions = SYSTEM_BULK_ACTIONS
    list_url_name = "inventory:systemaddress_list"

    def get_queryset(self):
        return system_address_list(user=self.request.user)


class SystemAddressMixin(PermissionRequiredMixin):
    raise_exception = True

    def get_system_address(self) -> SystemAddress:
        return get_object_or_404(system_address_list(user=self.request.user), pk=self.kwargs["pk"])

    def base_context(self, **extra):
        return {
            "list_url": reverse("inventory:systemaddress_list"),
            "list_title": SYSTEM_TITLE,
            **extra,
        }


class SystemAddressFormView(SystemAddressMixin, View):
    def get_permission_required(self):
        if "pk" in self.kwargs:
            return ("inventory.change_systemaddress",)
        return ("inventory.add_systemaddress",)

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
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

    def get(self, request, **kwargs):
        return self.render_form(self.get_form())

    def post(self, request, **kwargs):
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        try:
            if form.instance.pk:
                system_address = form.instance
                # The form wrote its values onto the instance; the service starts from the stored row.
                system_address.refresh_from_db()
                services.system_address_update(
                    system_address=system_address, values=form.service_values()
                )
                messages.success(request, _("%(name)s saved.") % {"name": system_address.name})
            else:
                system_address = services.system_address_create(values=form.service_values())
                messages.success(request, _("%(name)s created.") % {"name": system_address.name})
        except ValidationError as exc:
            _add_service_errors(form, exc)
            return self.render_form(form)
        return redirect("inventory:systemaddress_list")


class SystemAddressDuplicateView(SystemAddressMixin, View):
    permission_required = "inventory.add_systemaddress"

    def render_form(self, system_address, form):
        title = _("Duplicate %(name)s") % {"name": system_address.name}
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

    def get(self, request, pk):
        system_address = self.get_system_address()
        form = DuplicateForm(
            model=SystemAddress,
            initial={"name": services.copy_name(SystemAddress, system_address.name)},
            cancel_url=reverse("inventory:systemaddress_list"),
        )
        return self.render_form(system_address, form)

    def post(self, request, pk):
        system_address = self.get_system_address()
        form = DuplicateForm(
            request.POST, model=SystemAddress, cancel_url=reverse("inventory:systemaddress_list")
        )
        if form.is_valid():
            try:
                copy = services.system_address_duplicate(
                    system_address=system_address, name=form.cleaned_data["name"]
                )
            except ValidationError as exc:
                _add_service_errors(form, exc)
            else:
                messages.success(request, _("%(name)s created as a copy.") % {"name": copy.name})
                return redirect("inventory:systemaddress_update", pk=copy.pk)
        return self.render_form(system_address, form)


class SystemAddressDeleteView(SystemAddressMixin, View):
    permission_required = "inventory.delete_systemaddress"

    def render_page(self, system_address, refusal=None):
        return render(
            self.request,
            "common/confirm.html",
            self.base_context(
                title=_("Delete %(name)s") % {"name": system_address.name},
                question=_("Delete the system address %(name)s? This cannot be undone.")
                % {"name": system_address.name},
                refusal=refusal,
                danger=True,
                confirm_label=_("Delete"),
                cancel_url=reverse("inventory:systemaddress_list"),
            ),
        )

    def get(self, request, pk):
        return self.render_page(self.get_system_address())

    def post(self, request, pk):
        system_address = self.get_system_address()
        name = system_address.name
        try:
            services.system_address_delete(system_address=system_address)
        except ValidationError as exc:
            return self.render_page(system_address, refusal=" ".join(exc.messages))
        messages.success(request, _("%(name)s deleted.") % {"name": name})
        return redirect("inventory:systemaddress_list")


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
    """JSON for recipient autocomplete: ?q=text&limit=n (at most 50).

    {"results": [{"token": "customer:5", "label": "1001 · Muster GmbH", "kind": "customer",
    "kind_label": "Customer", "detail": "einkauf@muster.example"}, …]}
    """
    if not has_role(request.user):
        return JsonResponse({"error": _("You have no access to recipients.")}, status=403)
    try:
        limit = max(1, min(int(request.GET.get("limit", 20)), MAX_SEARCH_LIMIT))
    except ValueError:
        limit = 20
    choices = search_recipients(request.GET.get("q", ""), user=request.user, limit=limit)
    return JsonResponse({"results": [choice.as_dict() for choice in choices]})
