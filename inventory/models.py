import datetime

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

MAX_INTERVAL_MONTHS = 240


class Language(models.TextChoices):
    GERMAN = "de", _("German")
    ENGLISH = "en", _("English")


class TicketStatus(models.TextChoices):
    OPEN = "open", _("open")
    CLOSED = "closed", _("closed")


class DueFilter(models.TextChoices):
    """Which rows a report takes by their due date (5.6.3); see selectors.filter_due()."""

    ALL = "all", _("all")
    DUE = "due", _("due")
    OVERDUE = "overdue", _("overdue")
    DUE_OVERDUE = "due_overdue", _("due or overdue")


def default_language() -> str:
    # Read at call time, not import time: the installation's language is the default.
    return settings.LANGUAGE_CODE


def compute_next_due_date(last_calibration: datetime.date | None, interval_months: int | None):
    """The next calibration date: the last one plus the interval in calendar months.

    relativedelta keeps the day of month and clips it to the target month's end, so
    31 January + 1 month is the last day of February and 29 February + 12 months is
    28 February. Without a last calibration there is no due date.
    """
    if last_calibration is None or not interval_months:
        return None
    return last_calibration + relativedelta(months=interval_months)


class ConstraintErrorsOnFields:
    """Shows a violated expression constraint (a case-insensitive unique name) on the field
    it guards instead of above the form: Django files errors of such constraints under
    NON_FIELD_ERRORS. The constraint says which field with violation_error_code
    "unique_<field>"."""

    def validate_constraints(self, exclude=None):
        try:
            super().validate_constraints(exclude)
        except ValidationError as exc:
            errors = dict(exc.error_dict)
            general = []
            for error in errors.pop(NON_FIELD_ERRORS, []):
                code = error.code or ""
                field = code.removeprefix("unique_")
                if code.startswith("unique_") and field in {f.name for f in self._meta.fields}:
                    errors.setdefault(field, []).append(error)
                else:
                    general.append(error)
            if general:
                errors[NON_FIELD_ERRORS] = general
            raise ValidationError(errors) from None


class Customer(models.Model):
    """A calServer customer; its contact addresses receive the customer's mails."""

    number = models.CharField(_("customer number"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=200)
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, default=default_language
    )
    city = models.CharField(_("city"), max_length=100, blank=True)
    # An inactive customer stays for its records but receives no mail (audiences skip it).
    is_active = models.BooleanField(_("active"), default=True)
    # The calServer connector upserts by this id; NULL for records not from calServer.
    external_id = models.CharField(_("calServer ID"), max_length=100, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], name="inventory_customer_unique_external_id"
            ),
        ]

    def __str__(self):
        return self.label

    @property
    def label(self) -> str:
        return f"{self.number} · {self.name}"


class CustomerContact(ConstraintErrorsOnFields, models.Model):
    """One contact e-mail address of a customer; a customer without any is not mailable."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="contacts", verbose_name=_("customer")
    )
    email = models.EmailField(_("e-mail address"))
    name = models.CharField(_("contact person"), max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    # The calServer connector upserts by this id; NULL for records not from calServer.
    external_id = models.CharField(_("calServer ID"), max_length=100, null=True, blank=True)  # noqa: DJ001
    # A contact calServer no longer lists: kept, but never mailed (inventory.recipients).
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("contact address")
        verbose_name_plural = _("contact addresses")
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], name="inventory_customercontact_unique_external_id"
            ),
            models.UniqueConstraint(
                F("customer"),
                Lower("email"),
                name="inventory_contact_unique_email",
                violation_error_code="unique_email",
                violation_error_message=_("The customer already has this address."),
            ),
        ]

    def __str__(self):
        return self.email


class Location(models.Model):
    """A site of a customer (plant, lab, hall) where instruments are kept."""

    name = models.CharField(_("name"), max_length=200)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="locations", verbose_name=_("customer")
    )
    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="responsible_locations",
        verbose_name=_("responsible"),
    )
    city = models.CharField(_("city"), max_length=100, blank=True)
    # Inactive records stay for their history but drop out of reports and audiences.
    is_active = models.BooleanField(_("active"), default=True)
    # The calServer connector upserts by this id; NULL for records not from calServer.
    external_id = models.CharField(_("calServer ID"), max_length=100, null=True, blank=True)  # noqa: DJ001

    class Meta:
        verbose_name = _("location")
        verbose_name_plural = _("locations")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], name="inventory_location_unique_external_id"
            ),
            models.UniqueConstraint(
                fields=["customer", "name"],
                name="inventory_location_unique_name",
                violation_error_message=_("The customer already has a location with this name."),
            ),
        ]

    def __str__(self):
        return self.name


class Instrument(models.Model):
    """A calibrated instrument. next_due_date is derived, stored and indexed for reports."""

    inventory_number = models.CharField(_("inventory number"), max_length=30, unique=True)
    description = models.CharField(_("description"), max_length=200)
    manufacturer = models.CharField(_("manufacturer"), max_length=100, blank=True)
    model = models.CharField(_("model"), max_length=100, blank=True)
    serial_number = models.CharField(_("serial number"), max_length=100, blank=True)
    # The composite (…, next_due_date) indexes below serve lookups by customer and by
    # responsible user as well, so the foreign keys need no index of their own.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="instruments",
        verbose_name=_("customer"),
        db_index=False,
    )
    location = models.ForeignKey(
        Location,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="instruments",
        verbose_name=_("location"),
    )
    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="responsible_instruments",
        verbose_name=_("responsible"),
        db_index=False,
    )
    last_calibration = models.DateField(_("last calibration"), null=True, blank=True)
    calibration_interval_months = models.PositiveSmallIntegerField(
        _("calibration interval (months)"),
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_INTERVAL_MONTHS)],
    )
    next_due_date = models.DateField(_("next calibration"), null=True, blank=True, editable=False)
    # Inactive records stay for their history but drop out of reports and audiences.
    is_active = models.BooleanField(_("active"), default=True)
    # The calServer connector upserts by this id; NULL for records not from calServer.
    external_id = models.CharField(_("calServer ID"), max_length=100, null=True, blank=True)  # noqa: DJ001

    class Meta:
        verbose_name = _("instrument")
        verbose_name_plural = _("instruments")
        ordering = ["inventory_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], name="inventory_instrument_unique_external_id"
            ),
            models.CheckConstraint(
                condition=Q(
                    calibration_interval_months__gte=1,
                    calibration_interval_months__lte=MAX_INTERVAL_MONTHS,
                ),
                name="inventory_instrument_interval_range",
            ),
        ]
        indexes = [
            # Reports: a customer's, a responsible user's, or all instruments by due date.
            models.Index(fields=["customer", "next_due_date"], name="inv_instr_customer_due_idx"),
            models.Index(
                fields=["responsible", "next_due_date"], name="inv_instr_responsible_due_idx"
            ),
            models.Index(fields=["next_due_date"], name="inv_instr_due_idx"),
        ]

    def __str__(self):
        return f"{self.inventory_number} {self.description}"

    def save(self, *args, **kwargs):
        # The due date follows from the two fields it depends on, whoever saves.
        self.next_due_date = compute_next_due_date(
            self.last_calibration, self.calibration_interval_months
        )
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {
            "last_calibration",
            "calibration_interval_months",
        } & set(update_fields):
            kwargs["update_fields"] = {*update_fields, "next_due_date"}
        super().save(*args, **kwargs)

    def clean(self):
        if (
            self.location_id is not None
            and self.customer_id is not None
            and self.location.customer_id != self.customer_id
        ):
            raise ValidationError(
                {"location": _("The location belongs to another customer.")}, code="location"
            )


class SupportTicket(models.Model):
    number = models.CharField(_("ticket number"), max_length=30, unique=True)
    subject = models.CharField(_("subject"), max_length=200)
    status = models.CharField(
        _("status"), max_length=10, choices=TicketStatus.choices, default=TicketStatus.OPEN
    )
    # Covered by the composite indexes below, like the instrument's.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="tickets",
        verbose_name=_("customer"),
        db_index=False,
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        verbose_name=_("assignee"),
        db_index=False,
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    # Inactive records stay for their history but drop out of reports and audiences.
    is_active = models.BooleanField(_("active"), default=True)
    # The calServer connector upserts by this id; NULL for records not from calServer.
    external_id = models.CharField(_("calServer ID"), max_length=100, null=True, blank=True)  # noqa: DJ001

    class Meta:
        verbose_name = _("support ticket")
        verbose_name_plural = _("support tickets")
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], name="inventory_supportticket_unique_external_id"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "due_date"], name="inv_ticket_customer_due_idx"),
            models.Index(fields=["assignee", "due_date"], name="inv_ticket_assignee_due_idx"),
            models.Index(fields=["status", "due_date"], name="inv_ticket_status_due_idx"),
        ]

    def __str__(self):
        return f"{self.number} {self.subject}"


class UserProfile(models.Model):
    """What calmail knows about a user beyond Django's user: the language of their mails."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="profile",
        verbose_name=_("user"),
    )
    language = models.CharField(
        _("language"),
        max_length=2,
        choices=Language.choices,
        default=default_language,
        help_text=_("Mails to this user are written in this language when the template has it."),
    )

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")

    def __str__(self):
        return str(self.user)


class DistributionList(ConstraintErrorsOnFields, models.Model):
    """Verteilergruppe: a named set of users, customers and further addresses."""

    # Names are unique ignoring case. (SQLite's LOWER() folds ASCII letters only, so there
    # "Ä" and "ä" still differ; PostgreSQL folds all.)

    name = models.CharField(_("name"), max_length=100)
    description = models.CharField(_("description"), max_length=500, blank=True)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="distribution_lists",
        verbose_name=_("users"),
    )
    customers = models.ManyToManyField(
        Customer, blank=True, related_name="distribution_lists", verbose_name=_("customers")
    )
    owner_group = models.ForeignKey(
        Group,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("owner group"),
        help_text=_(
            "Only members of this group and administrators see the list. Empty: everyone with access to distribution lists."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("distribution list")
        verbose_name_plural = _("distribution lists")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="inventory_distributionlist_unique_name",
                violation_error_code="unique_name",
                violation_error_message=_("A distribution list with this name already exists."),
            )
        ]

    def __str__(self):
        return self.name


class DistributionListAddress(ConstraintErrorsOnFields, models.Model):
    """An address typed into a distribution list (no user or customer behind it)."""

    distribution_list = models.ForeignKey(
        DistributionList,
        on_delete=models.CASCADE,
        related_name="addresses",
        verbose_name=_("distribution list"),
    )
    email = models.EmailField(_("e-mail address"))
    name = models.CharField(_("name"), max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("list address")
        verbose_name_plural = _("list addresses")
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                F("distribution_list"),
                Lower("email"),
                name="inventory_listaddress_unique_email",
                violation_error_code="unique_email",
                violation_error_message=_("The list already has this address."),
            )
        ]

    def __str__(self):
        return self.email


class SystemAddress(ConstraintErrorsOnFields, models.Model):
    """A named fixed address of the installation, such as "Kalibrierlabor"."""

    name = models.CharField(_("name"), max_length=100)
    email = models.EmailField(_("e-mail address"))
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, default=default_language
    )
    description = models.CharField(_("description"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("system address")
        verbose_name_plural = _("system addresses")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="inventory_systemaddress_unique_name",
                violation_error_code="unique_name",
                violation_error_message=_("A system address with this name already exists."),
            )
        ]

    def __str__(self):
        return self.name
