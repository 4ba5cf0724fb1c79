"""Writes to calServer data and recipients. Views, commands and tasks go through these."""

import datetime
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError, QuerySet
from django.utils.translation import gettext as _

from inventory.models import (
    Customer,
    CustomerContact,
    DistributionList,
    DistributionListAddress,
    Instrument,
    SystemAddress,
    UserProfile,
    compute_next_due_date,
    default_language,
)
from maillog.models import AuditAction
from maillog.services import diff_fields, log_audit, snapshot


@dataclass(frozen=True)
class AddressEntry:
    """An e-mail address with an optional display name, as typed into a form."""

    email: str
    name: str = ""


def _unique_entries(entries: Iterable[AddressEntry | str]) -> list[AddressEntry]:
    """Entries without repeats (case-insensitive), the first one kept, order kept."""
    seen, result = set(), []
    for entry in entries:
        if isinstance(entry, str):
            entry = AddressEntry(email=entry)
        entry = AddressEntry(email=entry.email.strip(), name=entry.name.strip())
        key = entry.email.lower()
        if key not in seen:
            seen.add(key)
            result.append(entry)
    return result


def _validated(objects: Sequence[CustomerContact | DistributionListAddress], field: str) -> None:
    """full_clean() every object; report all problems at once under `field`.

    Constraints are not checked here: the entries are already free of repeats, and the
    rows they replace are still in the table until the caller deletes them.
    """
    messages: list[str] = []
    for obj in objects:
        try:
            obj.full_clean(exclude={"customer", "distribution_list"}, validate_constraints=False)
        except ValidationError as exc:
            messages.extend(
                _("%(address)s: %(problem)s") % {"address": obj.email or "—", "problem": message}
                for message in exc.messages
            )
    if messages:
        raise ValidationError({field: messages})


def _apply(obj: Model, values: dict, fields: Sequence[str]) -> list[str]:
    changed = []
    for name in fields:
        if name in values and getattr(obj, name) != values[name]:
            setattr(obj, name, values[name])
            changed.append(name)
    return changed


def copy_name(
    model: type[DistributionList | SystemAddress], name: str, *, max_length: int = 100
) -> str:
    """A free name for a copy: "Name (copy)", then "Name (copy 2)", … (case-insensitive)."""
    # Not f-strings: gettext's extractor does not look inside one.
    suffix = " " + _("(copy)")
    number = 2
    while True:
        candidate = name[: max_length - len(suffix)] + suffix
        if not model.objects.filter(name__iexact=candidate).exists():
            return candidate
        suffix = " " + _("(copy %(number)s)") % {"number": number}
        number += 1


# --- user profiles ------------------------------------------------------------------------


def profile_for(user: User) -> UserProfile:
    """The user's profile, created with the installation's language on first use."""
    try:
        return user.profile
    except UserProfile.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            profile, _created = UserProfile.objects.get_or_create(user=user)
    except IntegrityError:
        # Another request created it between our look-up and insert.
        profile = UserProfile.objects.get(user=user)
    user.profile = profile
    return profile


@transaction.atomic
def profile_set_language(*, user: User, language: str) -> UserProfile:
    profile = profile_for(user)
    profile.language = language
    profile.full_clean()
    profile.save(update_fields=["language"])
    return profile


# --- customers ----------------------------------------------------------------------------


@transaction.atomic
def customer_create(
    *,
    number: str,
    name: str,
    language: str | None = None,
    city: str = "",
    contacts: Iterable[AddressEntry | str] = (),
) -> Customer:
    customer = Customer(
        number=number, name=name, language=language or default_language(), city=city
    )
    customer.full_clean()
    customer.save()
    customer_set_contacts(customer=customer, contacts=contacts)
    return customer


@transaction.atomic
def customer_set_contacts(*, customer: Customer, contacts: Iterable[AddressEntry | str]) -> None:
    """Replace the customer's contact addresses (in the given order)."""
    objects = [
        CustomerContact(customer=customer, email=entry.email, name=entry.name, position=index)
        for index, entry in enumerate(_unique_entries(contacts))
    ]
    _validated(objects, "contacts")
    customer.contacts.all().delete()
    CustomerContact.objects.bulk_create(objects)


# --- instruments --------------------------------------------------------------------------

INSTRUMENT_FIELDS = (
    "inventory_number",
    "description",
    "manufacturer",
    "model",
    "serial_number",
    "customer",
    "location",
    "responsible",
    "last_calibration",
    "calibration_interval_months",
)
# What a bulk update may set; identity fields (numbers, customer) are changed one by one.
BULK_INSTRUMENT_FIELDS = (
    "location",
    "responsible",
    "last_calibration",
    "calibration_interval_months",
)


@transaction.atomic
def instrument_update(*, instrument: Instrument, values: dict) -> list[str]:
    """Update an instrument; the next due date follows (Instrument.save)."""
    changed = _apply(instrument, values, INSTRUMENT_FIELDS)
    instrument.full_clean()
    instrument.save()
    return changed


@transaction.atomic
def instruments_bulk_update(*, instruments: QuerySet[Instrument], values: dict) -> int:
    """Set the same values on many instruments in a few statements, keeping their next due
    dates consistent. Returns the number of instruments updated."""
    unknown = set(values) - set(BULK_INSTRUMENT_FIELDS)
    if unknown:
        raise ValueError(f"Not bulk-updatable: {', '.join(sorted(unknown))}")
    if "calibration_interval_months" in values:
        field = Instrument._meta.get_field("calibration_interval_months")
        try:
            field.clean(values["calibration_interval_months"], None)
        except ValidationError as exc:
            raise ValidationError({"calibration_interval_months": exc.messages}) from None
    pks = list(instruments.order_by().values_list("pk", flat=True))
    location = values.get("location")
    if location is not None and (
        Instrument.objects.filter(pk__in=pks).exclude(customer_id=location.customer_id).exists()
    ):
        raise ValidationError({"location": _("The location belongs to another customer.")})
    for chunk in _chunks(pks):
        Instrument.objects.filter(pk__in=chunk).update(**values)
    if {"last_calibration", "calibration_interval_months"} & set(values):
        instruments_recompute_next_due(instruments=Instrument.objects.filter(pk__in=pks))
    return len(pks)


@transaction.atomic
def instruments_recompute_next_due(*, instruments: QuerySet[Instrument] | None = None) -> int:
    """Recompute the stored next due date of the instruments (default: all) and return how
    many changed. Rows are read once; the changed ones are written grouped by their new
    date, a few hundred per statement."""
    queryset = Instrument.objects.all() if instruments is None else instruments
    stale: dict[datetime.date | None, list[int]] = defaultdict(list)
    rows = queryset.order_by().values_list(
        "pk", "last_calibration", "calibration_interval_months", "next_due_date"
    )
    for pk, last_calibration, interval, stored in rows.iterator(chunk_size=5000):
        due = compute_next_due_date(last_calibration, interval)
        if due != stored:
            stale[due].append(pk)
    for due, pks in stale.items():
        for chunk in _chunks(pks):
            Instrument.objects.filter(pk__in=chunk).update(next_due_date=due)
    return sum(len(pks) for pks in stale.values())


def _chunks(items: list[int], size: int = 500) -> Iterator[list[int]]:
    # SQLite allows only so many parameters per statement.
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- distribution lists -------------------------------------------------------------------


def _set_members(
    distribution_list: DistributionList,
    *,
    users: Iterable[User | int],
    customers: Iterable[Customer | int],
    addresses: Iterable[AddressEntry | str],
) -> None:
    entries = _unique_entries(addresses)
    objects = [
        DistributionListAddress(
            distribution_list=distribution_list, email=entry.email, name=entry.name, position=index
        )
        for index, entry in enumerate(entries)
    ]
    _validated(objects, "addresses")
    distribution_list.users.set(users)
    distribution_list.customers.set(customers)
    distribution_list.addresses.all().delete()
    DistributionListAddress.objects.bulk_create(objects)


@transaction.atomic
def distribution_list_create(
    *,
    name: str,
    description: str = "",
    owner_group: Group | None = None,
    users: Iterable[User | int] = (),
    customers: Iterable[Customer | int] = (),
    addresses: Iterable[AddressEntry | str] = (),
) -> DistributionList:
    """Create a list with its members: users and customers (instances or ids) and typed
    addresses (repeats dropped, case-insensitive)."""
    distribution_list = DistributionList(
        name=name.strip(), description=description, owner_group=owner_group
    )
    distribution_list.full_clean()
    distribution_list.save()
    _set_members(distribution_list, users=users, customers=customers, addresses=addresses)
    log_audit(
        action=AuditAction.CREATED,
        obj=distribution_list,
        changes=diff_fields({}, _list_state(distribution_list)),
        group=distribution_list.owner_group_id,
    )
    return distribution_list


@transaction.atomic
def distribution_list_update(
    *,
    distribution_list: DistributionList,
    name: str,
    description: str,
    owner_group: Group | None,
    users: Iterable[User | int],
    customers: Iterable[Customer | int],
    addresses: Iterable[AddressEntry | str],
) -> None:
    """Replace a list's fields and members."""
    before = _list_state(distribution_list)
    distribution_list.name = name.strip()
    distribution_list.description = description
    distribution_list.owner_group = owner_group
    distribution_list.full_clean()
    distribution_list.save()
    _set_members(distribution_list, users=users, customers=customers, addresses=addresses)
    changes = diff_fields(before, _list_state(distribution_list))
    if changes:
        log_audit(
            action=AuditAction.UPDATED,
            obj=distribution_list,
            changes=changes,
            group=distribution_list.owner_group_id,
        )


@transaction.atomic
def distribution_list_duplicate(
    *, distribution_list: DistributionList, name: str | None = None
) -> DistributionList:
    """A copy with the same description, owner group and members."""
    return distribution_list_create(
        name=name or copy_name(DistributionList, distribution_list.name),
        description=distribution_list.description,
        owner_group=distribution_list.owner_group,
        users=list(distribution_list.users.values_list("pk", flat=True)),
        customers=list(distribution_list.customers.values_list("pk", flat=True)),
        addresses=[
            AddressEntry(email=address.email, name=address.name)
            for address in distribution_list.addresses.all()
        ],
    )


LIST_AUDITED_FIELDS = ("name", "description", "owner_group")


def _list_state(distribution_list: DistributionList) -> dict:
    """A list's fields and members (ids, addresses), for its audit trail."""
    return {
        **snapshot(distribution_list, LIST_AUDITED_FIELDS),
        "users": sorted(distribution_list.users.values_list("pk", flat=True)),
        "customers": sorted(distribution_list.customers.values_list("pk", flat=True)),
        "addresses": sorted(distribution_list.addresses.values_list("email", flat=True)),
    }


def _audit(obj: Model, action: str, before: dict | None, fields: Iterable[str]) -> None:
    """Audit trail entry (maillog); an update that changed none of `fields` writes none."""
    changes = diff_fields(before, snapshot(obj, fields)) if before is not None else {}
    if action == AuditAction.UPDATED and not changes:
        return
    log_audit(
        action=action,
        obj=obj,
        changes=changes,
        group=getattr(obj, "owner_group_id", None),
    )


def _delete(obj: Model) -> None:
    try:
        obj.delete()
    except ProtectedError as exc:
        users = sorted({str(item) for item in exc.protected_objects})
        raise ValidationError(
            _("%(name)s is still used by: %(users)s. Change those first.")
            % {
                "name": obj,
                "users": ", ".join(users[:10]) + (" …" if len(users) > 10 else ""),
            }
        ) from None


@transaction.atomic
def distribution_list_delete(*, distribution_list: DistributionList) -> None:
    """Delete a list; refused with the reason while something still refers to it."""
    _audit(distribution_list, AuditAction.DELETED, None, ())
    _delete(distribution_list)


# --- system addresses ---------------------------------------------------------------------

SYSTEM_ADDRESS_FIELDS = ("name", "email", "language", "description")


@transaction.atomic
def system_address_create(*, values: dict) -> SystemAddress:
    system_address = SystemAddress()
    _apply(system_address, values, SYSTEM_ADDRESS_FIELDS)
    system_address.name = system_address.name.strip()
    system_address.full_clean()
    system_address.save()
    _audit(system_address, AuditAction.CREATED, {}, SYSTEM_ADDRESS_FIELDS)
    return system_address


@transaction.atomic
def system_address_update(*, system_address: SystemAddress, values: dict) -> list[str]:
    before = snapshot(system_address, SYSTEM_ADDRESS_FIELDS)
    changed = _apply(system_address, values, SYSTEM_ADDRESS_FIELDS)
    system_address.name = system_address.name.strip()
    system_address.full_clean()
    system_address.save()
    _audit(system_address, AuditAction.UPDATED, before, SYSTEM_ADDRESS_FIELDS)
    return changed


@transaction.atomic
def system_address_duplicate(
    *, system_address: SystemAddress, name: str | None = None
) -> SystemAddress:
    values = {field: getattr(system_address, field) for field in SYSTEM_ADDRESS_FIELDS}
    values["name"] = name or copy_name(SystemAddress, system_address.name)
    return system_address_create(values=values)


@transaction.atomic
def system_address_delete(*, system_address: SystemAddress) -> None:
    """Delete a system address; refused with the reason while something still refers to it."""
    _audit(system_address, AuditAction.DELETED, None, ())
    _delete(system_address)
