from django.contrib import admin

from inventory.models import (
    Customer,
    CustomerContact,
    DistributionList,
    DistributionListAddress,
    Instrument,
    Location,
    SupportTicket,
    SystemAddress,
    UserProfile,
)


class CustomerContactInline(admin.TabularInline):
    model = CustomerContact
    extra = 1


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("number", "name", "language", "city", "is_active")
    list_filter = ("language", "is_active")
    search_fields = ("number", "name", "city", "contacts__email")
    inlines = [CustomerContactInline]


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("name", "customer", "responsible", "city")
    search_fields = ("name", "customer__number", "customer__name")
    list_select_related = ("customer", "responsible")
    raw_id_fields = ("customer", "responsible")


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    """Saving here goes through Instrument.save(), which keeps the next due date right."""

    list_display = (
        "inventory_number",
        "description",
        "manufacturer",
        "model",
        "customer",
        "last_calibration",
        "calibration_interval_months",
        "next_due_date",
    )
    list_filter = ("manufacturer", "calibration_interval_months")
    search_fields = ("inventory_number", "serial_number", "description", "customer__name")
    list_select_related = ("customer",)
    # Thousands of customers and locations: no select boxes listing all of them.
    raw_id_fields = ("customer", "location", "responsible")
    readonly_fields = ("next_due_date",)
    date_hierarchy = "next_due_date"


@admin.register(SupportTicket)
class SupportTicketAdmin(admin.ModelAdmin):
    list_display = ("number", "subject", "status", "customer", "assignee", "due_date")
    list_filter = ("status",)
    search_fields = ("number", "subject", "customer__name")
    list_select_related = ("customer", "assignee")
    raw_id_fields = ("customer", "assignee")


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "language")
    list_filter = ("language",)
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("user",)


class DistributionListAddressInline(admin.TabularInline):
    model = DistributionListAddress
    extra = 1


@admin.register(DistributionList)
class DistributionListAdmin(admin.ModelAdmin):
    list_display = ("name", "owner_group", "updated_at")
    search_fields = ("name", "description")
    filter_horizontal = ("users",)
    raw_id_fields = ("customers",)
    inlines = [DistributionListAddressInline]


@admin.register(SystemAddress)
class SystemAddressAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "language", "description")
    search_fields = ("name", "email")
