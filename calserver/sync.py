"""The sync proper: calServer records into calmail's inventory, kind by kind.

Upsert by the calServer id kept on each record (`external_id`). A record without one
yet but with the same natural key (customer number, inventory number, ticket number),
e.g. from a spreadsheet import, is taken over instead of clashing with it. Each record
is saved in a savepoint of its own, so a bad one is rejected with its reason and the
rest go on.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils.translation import gettext as _

from calserver.client import CalServerAuthError, CalServerClient, CalServerError
from calserver.mapping import KIND_LABELS, MappedRecord, map_record
from calserver.models import CalServerConnection
from inventory.models import Customer, CustomerContact, Instrument, Location, SupportTicket

STOPPING_ERRORS = (CalServerAuthError,)
# Reasons kept per run; the counts are complete either way.
REJECTIONS_KEPT = 200
COUNTS = ("created", "updated", "unchanged", "inactivated", "rejected")

MODELS: dict[str, type[Model]] = {
    "customers": Customer,
    "contacts": CustomerContact,
    "locations": Location,
    "instruments": Instrument,
    "tickets": SupportTicket,
}
# Natural keys an unclaimed local record is taken over by.
NATURAL_KEYS = {"customers": "number", "instruments": "inventory_number", "tickets": "number"}


class Tally:
    def __init__(self) -> None:
        self.per_kind: dict[str, dict[str, int]] = {}
        self.rejections: list[dict[str, str]] = []

    def add(self, kind: str, what: str, count: int = 1) -> None:
        counts = self.per_kind.setdefault(kind, dict.fromkeys(COUNTS, 0))
        counts[what] += count

    def reject(self, kind: str, external_id: str, reason: str) -> None:
        self.add(kind, "rejected")
        if len(self.rejections) < REJECTIONS_KEPT:
            self.rejections.append({"kind": kind, "id": external_id, "reason": reason})

    def total(self, what: str) -> int:
        return sum(counts[what] for counts in self.per_kind.values())


class Rejected(Exception):
    pass


def sync_all(*, client: CalServerClient, connection: CalServerConnection, tally: Tally) -> str:
    """Every synced kind in order; returns "" or what went wrong (safe to show)."""
    errors = []
    try:
        client.authenticate()
        for kind in connection.synced_kinds:
            tally.per_kind.setdefault(kind, dict.fromkeys(COUNTS, 0))
            try:
                seen = _sync_kind(client=client, connection=connection, kind=kind, tally=tally)
            except STOPPING_ERRORS:
                raise
            except CalServerError as exc:
                # The pass is incomplete: nobody of this kind is marked inactive.
                errors.append(f"{KIND_LABELS[kind]}: {exc}")
                continue
            _inactivate(kind=kind, seen=seen, tally=tally)
    except STOPPING_ERRORS as exc:
        errors.append(str(exc))
    return " ".join(errors)


def _sync_kind(
    *, client: CalServerClient, connection: CalServerConnection, kind: str, tally: Tally
) -> set[str]:
    mapping = connection.mapping_of(kind)
    resolver = _Resolver()
    seen: set[str] = set()
    for page in client.pages(kind):
        with transaction.atomic():
            for raw in page.records:
                record = map_record(kind, mapping, raw)
                external_id = record.external_id
                if external_id:
                    seen.add(external_id)
                try:
                    if not record.ok:
                        raise Rejected("; ".join(record.problems))
                    with transaction.atomic():
                        outcome = _upsert(kind, record, resolver)
                except Rejected as exc:
                    tally.reject(kind, external_id, str(exc))
                except ValidationError as exc:
                    tally.reject(kind, external_id, _validation_text(exc))
                except IntegrityError:
                    tally.reject(
                        kind, external_id, _("conflicts with another record (a key is taken)")
                    )
                else:
                    tally.add(kind, outcome)
    return seen


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


class _Resolver:
    """calServer ids of customers and locations -> calmail's, read once per kind."""

    def __init__(self) -> None:
        self._customers: dict[str, int] | None = None
        self._locations: dict[str, tuple[int, int]] | None = None

    def customer(self, external_id: str) -> int:
        if self._customers is None:
            self._customers = {
                str(ext): pk
                for ext, pk in Customer.objects.filter(external_id__isnull=False).values_list(
                    "external_id", "pk"
                )
            }
        try:
            return self._customers[external_id]
        except KeyError:
            raise Rejected(
                _("unknown customer %(id)s (not among the synced customers)") % {"id": external_id}
            ) from None

    def location(self, external_id: str, customer_id: int) -> int:
        if self._locations is None:
            self._locations = {
                str(ext): (pk, customer)
                for ext, pk, customer in Location.objects.filter(
                    external_id__isnull=False
                ).values_list("external_id", "pk", "customer_id")
            }
        found = self._locations.get(external_id)
        if found is None:
            raise Rejected(_("unknown location %(id)s") % {"id": external_id})
        if found[1] != customer_id:
            raise Rejected(_("location %(id)s belongs to another customer") % {"id": external_id})
        return found[0]

    @staticmethod
    def location_by_name(name: str, customer_id: int) -> int | None:
        return (
            Location.objects.filter(customer_id=customer_id, name=name)
            .values_list("pk", flat=True)
            .first()
        )


def _values(kind: str, record: MappedRecord, resolver: _Resolver) -> dict[str, Any]:
    """The model's field values of a mapped record; fields the record lacks stay as they are."""
    values = dict(record.values)
    customer = values.pop("customer", None)
    if customer:
        values["customer_id"] = resolver.customer(customer)
    if kind == "instruments":
        location = values.pop("location", None)
        location_name = values.pop("location_name", None)
        if location:
            values["location_id"] = resolver.location(location, values["customer_id"])
        elif location_name is not None:
            values["location_id"] = (
                resolver.location_by_name(location_name, values["customer_id"])
                if location_name
                else None
            )
    if kind == "instruments" and values.get("calibration_interval_months") is None:
        values.pop("calibration_interval_months", None)
    return values


def _upsert(kind: str, record: MappedRecord, resolver: _Resolver) -> str:
    model = MODELS[kind]
    values = _values(kind, record, resolver)
    external_id = values["external_id"]
    obj = model._default_manager.filter(external_id=external_id).first()
    natural_key = NATURAL_KEYS.get(kind)
    if obj is None and natural_key and values.get(natural_key):
        obj = model._default_manager.filter(
            external_id__isnull=True, **{natural_key: values[natural_key]}
        ).first()
    if obj is None:
        obj = model(**values)
        obj.full_clean()
        obj.save()
        return "created"
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if getattr(obj, "is_active", True) is False:
        # Back in calServer's answer: active again.
        obj.is_active = True  # type: ignore[attr-defined]
        changed.append("is_active")
    if not changed:
        return "unchanged"
    for name in changed:
        if name in values:
            setattr(obj, name, values[name])
    obj.full_clean()
    obj.save()
    return "updated"


def _inactivate(*, kind: str, seen: set[str], tally: Tally) -> None:
    """After a complete pass: records of the kind calServer no longer lists become
    inactive (never deleted); an inactive contact is no longer mailed."""
    model = MODELS[kind]
    if not any(f.name == "is_active" for f in model._meta.concrete_fields):
        return
    gone = [
        pk
        for pk, external_id in model._default_manager.filter(
            external_id__isnull=False, is_active=True
        ).values_list("pk", "external_id")
        if external_id not in seen
    ]
    # In chunks: SQLite limits the parameters of one statement.
    for start in range(0, len(gone), 500):
        model._default_manager.filter(pk__in=gone[start : start + 500]).update(is_active=False)
    tally.add(kind, "inactivated", len(gone))
