"""Per kind of record: its fields, how a row's cells become values, its natural key, and
the batched upsert (one lookup of existing keys per batch, bulk_create / bulk_update).

Rows are handled BATCH_SIZE at a time, so memory stays flat however long the file:
what lives for the whole run is the set of keys seen (for duplicates and "missing from
the export") and the rejected rows.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from calmail.common.roles import ADMINISTRATOR, POWER_USER, VIEWER
from imports.models import ImportKind
from inventory.models import (
    MAX_INTERVAL_MONTHS,
    Customer,
    CustomerContact,
    Instrument,
    Language,
    Location,
    SupportTicket,
    TicketStatus,
    compute_next_due_date,
)

BATCH_SIZE = 1000


class Rejected(Exception):
    """A row that cannot be imported; message is an English msgid with %(name)s params,
    translated when shown (like the Log's entries)."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class Field:
    name: str
    label: Promise
    type: str = "text"  # text, email, emails, date, int, choice, bool, ref
    required: bool = False
    max_length: int | None = None
    # choice fields: calmail value -> words that mean it (lower case), besides the value
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)


_YES = ("1", "x", "yes", "ja", "true", "wahr", "active", "aktiv", "y", "j")
_NO = ("0", "no", "nein", "false", "falsch", "inactive", "inaktiv", "n", "")
_EMAIL_SPLIT = re.compile(r"[;,\s]+")


@dataclass
class Mapping:
    """What the user chose: source column index per calmail field, the date format and
    value maps ({field: {source text (lower case): calmail value}})."""

    columns: dict[str, int]
    date_format: str
    value_maps: dict[str, dict[str, str]]

    @classmethod
    def build(cls, headers: list[str], mapping: dict) -> Mapping:
        index = {header: position for position, header in enumerate(headers)}
        columns = {
            target: index[source]
            for source, target in (mapping.get("columns") or {}).items()
            if target and source in index
        }
        value_maps = {
            target: {str(k).strip().lower(): str(v) for k, v in values.items()}
            for target, values in (mapping.get("value_maps") or {}).items()
        }
        return cls(columns, mapping.get("date_format") or "%d.%m.%Y", value_maps)


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    inactivated: int = 0
    rejections: list[dict] = field(default_factory=list)


def parse_date(text: str, date_format: str) -> datetime.date:
    # The chosen format, then ISO (real date cells of a workbook arrive as ISO text).
    formats = [date_format, "%Y-%m-%d", "%Y-%m-%d %H:%M:%S"]
    if date_format == "%d.%m.%Y":
        formats.append("%d.%m.%y")
    for candidate in formats:
        try:
            return datetime.datetime.strptime(text, candidate).date()
        except ValueError:
            continue
    raise Rejected(gettext_noop("date not understood in %(field)s: %(value)s"), value=text)


class Importer:
    """The upsert of one kind. Subclasses name their model, fields and key."""

    kind: ClassVar[str]
    model: ClassVar[type[models.Model]]
    fields: ClassVar[tuple[Field, ...]]
    key_fields: ClassVar[tuple[str, ...]]
    # The model fields the import sets (attnames), compared to tell updated from unchanged.
    supports_inactive: ClassVar[bool] = True

    def __init__(self, mapping: Mapping, *, write: bool, mark_missing_inactive: bool) -> None:
        self.mapping = mapping
        self.write = write
        self.mark_missing_inactive = mark_missing_inactive and self.supports_inactive
        self.outcome = Outcome()
        # key -> line of its first row: duplicates in the file, and the keys present.
        self.seen: dict[Any, int] = {}
        self._customers: dict[str, int] = {}
        self._users: dict[str, int] | None = None

    # --- cells to values ------------------------------------------------------------------

    @classmethod
    def field_map(cls) -> dict[str, Field]:
        return {f.name: f for f in cls.fields}

    def cells_to_values(self, cells: list[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in self.fields:
            position = self.mapping.columns.get(spec.name)
            if position is None:
                continue
            text = cells[position].strip() if position < len(cells) else ""
            try:
                values[spec.name] = self.convert(spec, text)
            except Rejected as exc:
                exc.params.setdefault("field", spec.name)
                raise
        return values

    def convert(self, spec: Field, text: str) -> Any:
        mapped = self.mapping.value_maps.get(spec.name, {}).get(text.lower())
        if mapped is not None:
            text = mapped
        if not text:
            if spec.required:
                raise Rejected(gettext_noop("%(field)s is empty"))
            return None if spec.type in ("date", "int", "ref", "choice") else ""
        if spec.max_length and len(text) > spec.max_length:
            raise Rejected(
                gettext_noop("%(field)s is longer than %(max)s characters"), max=spec.max_length
            )
        if spec.type == "email":
            return self.email(text)
        if spec.type == "emails":
            return [self.email(part) for part in _EMAIL_SPLIT.split(text) if part]
        if spec.type == "date":
            return parse_date(text, self.mapping.date_format)
        if spec.type == "int":
            try:
                number = float(text.replace(",", "."))
            except ValueError:
                raise Rejected(
                    gettext_noop("%(field)s is not a number: %(value)s"), value=text
                ) from None
            if not number.is_integer():
                raise Rejected(
                    gettext_noop("%(field)s is not a whole number: %(value)s"), value=text
                )
            return int(number)
        if spec.type == "bool":
            word = text.lower()
            if word in _YES:
                return True
            if word in _NO:
                return False
            raise Rejected(gettext_noop("%(field)s: value not understood: %(value)s"), value=text)
        if spec.type == "choice":
            word = text.lower()
            for value, words in spec.choices.items():
                if word == value.lower() or word in words:
                    return value
            raise Rejected(gettext_noop("%(field)s: value not understood: %(value)s"), value=text)
        return text

    @staticmethod
    def email(text: str) -> str:
        try:
            validate_email(text)
        except ValidationError:
            raise Rejected(gettext_noop("bad e-mail address: %(value)s"), value=text) from None
        return text

    # --- references (one query per batch) -------------------------------------------------

    def customer_ids(self, numbers: Iterable[str]) -> dict[str, int]:
        wanted = {n for n in numbers if n and n not in self._customers}
        if wanted:
            self._customers.update(
                Customer.objects.filter(number__in=wanted).values_list("number", "pk")
            )
        return self._customers

    def user_ids(self) -> dict[str, int]:
        # Users are few: all of them once, by user name and by e-mail (lower case).
        if self._users is None:
            self._users = {}
            for pk, username, email in get_user_model().objects.values_list(
                "pk", "username", "email"
            ):
                if email:
                    self._users.setdefault(email.lower(), pk)
                self._users[username.lower()] = pk
        return self._users

    def customer_of(self, values: dict) -> int:
        number = values.pop("customer_number")
        pk = self._customers.get(number)
        if pk is None:
            raise Rejected(gettext_noop("unknown customer number: %(value)s"), value=number)
        return pk

    def user_of(self, values: dict, name: str) -> int | None:
        text = values.pop(name)
        if not text:
            return None
        pk = self.user_ids().get(text.lower())
        if pk is None:
            raise Rejected(gettext_noop("unknown user: %(value)s"), value=text)
        return pk

    # --- the batch ---------------------------------------------------------------------------

    def key_of(self, values: dict) -> Any:
        return (
            tuple(values[name] for name in self.key_fields)
            if len(self.key_fields) > 1
            else values[self.key_fields[0]]
        )

    def reject(self, line: int, cells: list[str], exc: Rejected) -> None:
        self.outcome.rejected += 1
        self.outcome.rejections.append(
            {"line": line, "message": exc.message, "params": exc.params, "values": cells}
        )

    def process_batch(self, rows: list[tuple[int, list[str]]]) -> None:
        parsed: list[tuple[int, list[str], dict]] = []
        for line, cells in rows:
            try:
                parsed.append((line, cells, self.cells_to_values(cells)))
            except Rejected as exc:
                self.reject(line, cells, exc)
        self.prepare(values for _line, _cells, values in parsed)
        resolved: list[tuple[int, list[str], dict]] = []
        for line, cells, values in parsed:
            try:
                self.resolve(values)
                key = self.key_of(values)
                first = self.seen.get(key)
                if first is not None:
                    raise Rejected(
                        gettext_noop("duplicate key in the file (first in line %(line)s)"),
                        line=first,
                    )
                self.seen[key] = line
            except Rejected as exc:
                self.reject(line, cells, exc)
                continue
            resolved.append((line, cells, values))
        self.upsert(resolved)

    def prepare(self, rows: Iterable[dict]) -> None:
        """Look up the references of a batch at once."""

    def resolve(self, values: dict) -> None:
        """Turn references into ids (raise Rejected for unknown ones)."""

    # --- generic upsert for the inventory models ------------------------------------------------

    def existing(self, keys: list) -> dict[Any, models.Model]:
        raise NotImplementedError

    def new_instance(self, values: dict) -> models.Model:
        return self.model(**values)

    def assign(self, instance: models.Model, values: dict) -> set[str]:
        changed = set()
        for name, value in values.items():
            if getattr(instance, name) != value:
                setattr(instance, name, value)
                changed.add(name)
        return changed

    def finish_instance(self, instance: models.Model, changed: set[str]) -> set[str]:
        return changed

    def upsert(self, rows: list[tuple[int, list[str], dict]]) -> None:
        existing = self.existing([self.key_of(values) for _l, _c, values in rows])
        to_create: list[models.Model] = []
        to_update: list[models.Model] = []
        update_fields: set[str] = set()
        for _line, _cells, values in rows:
            values = dict(values)
            if self.mark_missing_inactive:
                # Present in the full export: active (again).
                values["is_active"] = True
            instance = existing.get(self.key_of(values))
            if instance is None:
                instance = self.new_instance(values)
                self.finish_instance(instance, set(values))
                to_create.append(instance)
                self.outcome.created += 1
                continue
            changed = self.finish_instance(instance, self.assign(instance, values))
            if changed:
                to_update.append(instance)
                update_fields |= changed
                self.outcome.updated += 1
            elif self.has_other_changes(self.key_of(values)):
                self.outcome.updated += 1
            else:
                self.outcome.unchanged += 1
        if self.write:
            if to_create:
                self.model.objects.bulk_create(to_create, batch_size=500)
            if to_update:
                self.model.objects.bulk_update(to_update, sorted(update_fields), batch_size=500)
        self.after_upsert(rows, existing, to_create)

    def has_other_changes(self, key: Any) -> bool:
        """Changes beside the model's own fields (a customer's new contact addresses)."""
        return False

    def after_upsert(self, rows, existing, created) -> None:
        pass

    # --- missing from a full export -------------------------------------------------------

    def active_keys(self) -> Iterable[tuple[int, Any]]:
        """(pk, key) of every active record, read in chunks."""
        names = ["pk", *self.key_fields]
        for row in (
            self.model.objects.filter(is_active=True).values_list(*names).iterator(chunk_size=5000)
        ):
            yield row[0], (row[1:] if len(self.key_fields) > 1 else row[1])

    def inactivate_missing(self) -> None:
        if not self.mark_missing_inactive:
            return
        missing = [pk for pk, key in self.active_keys() if self.normal_key(key) not in self.seen]
        self.outcome.inactivated = len(missing)
        if self.write:
            for start in range(0, len(missing), 500):
                self.model.objects.filter(pk__in=missing[start : start + 500]).update(
                    is_active=False
                )

    def normal_key(self, key: Any) -> Any:
        return key


# --- customers and contacts ------------------------------------------------------------------


class CustomerImporter(Importer):
    kind = ImportKind.CUSTOMERS
    model = Customer
    key_fields = ("number",)
    fields = (
        Field("number", _("customer number"), required=True, max_length=20),
        Field("name", _("name"), required=True, max_length=200),
        Field("city", _("city"), max_length=100),
        Field(
            "language",
            _("language"),
            type="choice",
            choices={
                Language.GERMAN: ("deutsch", "german", "de-de"),
                Language.ENGLISH: ("englisch", "english", "en-us", "en-gb"),
            },
        ),
        Field("contact_emails", _("contact e-mail addresses"), type="emails"),
        Field("contact_name", _("contact person"), max_length=200),
    )

    def existing(self, keys):
        return Customer.objects.in_bulk(keys, field_name="number")

    def upsert(self, rows):
        # Contacts are rows of their own: split them off, and find which addresses are new
        # (one query for the batch's existing customers). Addresses are only ever added.
        contacts = {}
        for _line, _cells, values in rows:
            emails = values.pop("contact_emails", None) or []
            contacts[values["number"]] = (emails, values.pop("contact_name", "") or "")
            if values.get("language") is None:
                values.pop("language", None)
        existing = self.existing(list(contacts))
        have: dict[int, list[str]] = {}
        for customer_id, email in CustomerContact.objects.filter(
            customer_id__in=[c.pk for c in existing.values()]
        ).values_list("customer_id", "email"):
            have.setdefault(customer_id, []).append(email.lower())
        self._adding = {}
        for number, (emails, name) in contacts.items():
            customer = existing.get(number)
            known = list(have.get(customer.pk, [])) if customer else []
            adding = []
            for email in emails:
                if email.lower() not in known:
                    known.append(email.lower())
                    adding.append(email)
            if adding:
                self._adding[number] = (adding, name, len(known) - len(adding))
        super().upsert(rows)

    def has_other_changes(self, key) -> bool:
        return key in self._adding

    def after_upsert(self, rows, existing, created):
        if not self.write or not self._adding:
            return
        customers = {c.number: c for c in [*existing.values(), *created]}
        new_contacts = [
            CustomerContact(
                customer=customers[number],
                email=email,
                name=name if offset == 0 else "",
                position=start + offset,
            )
            for number, (adding, name, start) in self._adding.items()
            for offset, email in enumerate(adding)
        ]
        CustomerContact.objects.bulk_create(new_contacts, batch_size=500)


# --- locations ------------------------------------------------------------------------------


class LocationImporter(Importer):
    kind = ImportKind.LOCATIONS
    model = Location
    key_fields = ("customer_id", "name")
    fields = (
        Field("customer_number", _("customer number"), required=True, max_length=20),
        Field("name", _("name"), required=True, max_length=200),
        Field("city", _("city"), max_length=100),
        Field("responsible", _("responsible (user name or e-mail)"), type="ref"),
    )

    def prepare(self, rows):
        self.customer_ids(values.get("customer_number") for values in rows)

    def resolve(self, values):
        values["customer_id"] = self.customer_of(values)
        if "responsible" in values:
            values["responsible_id"] = self.user_of(values, "responsible")

    def key_of(self, values):
        return (values["customer_id"], values["name"].lower())

    def normal_key(self, key):
        return (key[0], key[1].lower())

    def existing(self, keys):
        customer_ids = {customer_id for customer_id, _name in keys}
        found = {}
        for location in Location.objects.filter(customer_id__in=customer_ids):
            found[(location.customer_id, location.name.lower())] = location
        wanted = set(keys)
        return {key: value for key, value in found.items() if key in wanted}


# --- instruments ------------------------------------------------------------------------------


class InstrumentImporter(Importer):
    kind = ImportKind.INSTRUMENTS
    model = Instrument
    key_fields = ("inventory_number",)
    fields = (
        Field("inventory_number", _("inventory number"), required=True, max_length=30),
        Field("description", _("description"), required=True, max_length=200),
        Field("manufacturer", _("manufacturer"), max_length=100),
        Field("model", _("model"), max_length=100),
        Field("serial_number", _("serial number"), max_length=100),
        Field("customer_number", _("customer number"), required=True, max_length=20),
        Field("location", _("location (name)"), type="ref", max_length=200),
        Field("responsible", _("responsible (user name or e-mail)"), type="ref"),
        Field("last_calibration", _("last calibration"), type="date"),
        Field("calibration_interval_months", _("calibration interval (months)"), type="int"),
    )

    def prepare(self, rows):
        rows = list(rows)
        ids = self.customer_ids(values.get("customer_number") for values in rows)
        # The batch's locations by (customer, name), one query.
        wanted = {
            ids[values["customer_number"]]
            for values in rows
            if values.get("location") and values.get("customer_number") in ids
        }
        self._locations = {
            (customer_id, name.lower()): pk
            for pk, customer_id, name in Location.objects.filter(
                customer_id__in=wanted
            ).values_list("pk", "customer_id", "name")
        }

    def resolve(self, values):
        values["customer_id"] = self.customer_of(values)
        if "location" in values:
            name = values.pop("location")
            location_id = None
            if name:
                location_id = self._locations.get((values["customer_id"], name.lower()))
                if location_id is None:
                    raise Rejected(
                        gettext_noop("unknown location of the customer: %(value)s"), value=name
                    )
            values["location_id"] = location_id
        if "responsible" in values:
            values["responsible_id"] = self.user_of(values, "responsible")
        interval = values.get("calibration_interval_months", 0)
        if interval is None:
            values.pop("calibration_interval_months")
        elif "calibration_interval_months" in values and not 1 <= interval <= MAX_INTERVAL_MONTHS:
            raise Rejected(
                gettext_noop("calibration interval must be 1 to %(max)s months: %(value)s"),
                max=MAX_INTERVAL_MONTHS,
                value=interval,
            )

    def existing(self, keys):
        return Instrument.objects.in_bulk(keys, field_name="inventory_number")

    def finish_instance(self, instance, changed):
        # bulk_create/bulk_update skip save(): derive the due date here.
        due = compute_next_due_date(instance.last_calibration, instance.calibration_interval_months)
        if due != instance.next_due_date:
            instance.next_due_date = due
            changed = changed | {"next_due_date"}
        return changed


# --- support tickets ------------------------------------------------------------------------------


class TicketImporter(Importer):
    kind = ImportKind.TICKETS
    model = SupportTicket
    key_fields = ("number",)
    fields = (
        Field("number", _("ticket number"), required=True, max_length=30),
        Field("subject", _("subject"), required=True, max_length=200),
        Field(
            "status",
            _("status"),
            type="choice",
            choices={
                TicketStatus.OPEN: ("offen", "neu", "new", "in bearbeitung", "in progress"),
                TicketStatus.CLOSED: ("geschlossen", "erledigt", "done", "resolved", "gelöst"),
            },
        ),
        Field("customer_number", _("customer number"), required=True, max_length=20),
        Field("assignee", _("assignee (user name or e-mail)"), type="ref"),
        Field("created_at", _("created"), type="date"),
        Field("due_date", _("due date"), type="date"),
    )

    def prepare(self, rows):
        self.customer_ids(values.get("customer_number") for values in rows)

    def resolve(self, values):
        values["customer_id"] = self.customer_of(values)
        if "assignee" in values:
            values["assignee_id"] = self.user_of(values, "assignee")
        if values.get("status") is None:
            values.pop("status", None)
        if "created_at" in values:
            created = values.pop("created_at")
            if created is not None:
                # A date in the file; stored as the start of that day (local time).
                values["created_at"] = timezone.make_aware(
                    datetime.datetime.combine(created, datetime.time())
                )

    def existing(self, keys):
        return SupportTicket.objects.in_bulk(keys, field_name="number")


# --- users ---------------------------------------------------------------------------------------

ROLE_WORDS = {
    ADMINISTRATOR: ("admin", "administrator", "administratorin"),
    POWER_USER: ("power user", "poweruser", "hauptbenutzer", "power-user"),
    VIEWER: ("viewer", "leser", "betrachter", "read only", "nur lesen"),
}


class UserImporter(Importer):
    """Users by user name (or by e-mail when no user name column is mapped). New users get
    no password (they set one through a link) and the role of the row; an existing
    user's role and active state are never changed here: accounts guards those rules."""

    kind = ImportKind.USERS
    model = get_user_model()
    key_fields = ("username",)
    supports_inactive = False
    fields = (
        Field("username", _("user name"), max_length=150),
        Field("email", _("e-mail address"), type="email", max_length=254),
        Field("first_name", _("first name"), max_length=150),
        Field("last_name", _("last name"), max_length=150),
        Field("role", _("role"), type="choice", choices=ROLE_WORDS),
    )

    def resolve(self, values):
        if not values.get("username"):
            if not values.get("email"):
                raise Rejected(gettext_noop("neither user name nor e-mail address given"))
            values["username"] = values["email"]

    def key_of(self, values):
        return values["username"].lower()

    def existing(self, keys):
        # Users are few: all of them, by user name and (for rows without one) by e-mail,
        # both without case.
        if self._all_users is None:
            self._all_users = {}
            for user in get_user_model().objects.all():
                if user.email:
                    self._all_users.setdefault(user.email.lower(), user)
                self._all_users[user.username.lower()] = user
        return {key: self._all_users[key] for key in keys if key in self._all_users}

    _all_users: dict | None = None

    def upsert(self, rows):
        existing = self.existing([self.key_of(values) for _l, _c, values in rows])
        roles = {group.name: group for group in Group.objects.filter(name__in=ROLE_WORDS)}
        for _line, _cells, values in rows:
            values = dict(values)
            role = values.pop("role", None)
            user = existing.get(self.key_of(values))
            if user is None:
                self.outcome.created += 1
                if self.write:
                    user = self.model(**values)
                    user.set_unusable_password()
                    user.save()
                    if role:
                        user.groups.add(roles[role])
                continue
            values.pop("username")
            if self.assign(user, values):
                self.outcome.updated += 1
                if self.write:
                    user.save(update_fields=list(values))
            else:
                self.outcome.unchanged += 1


IMPORTERS: dict[str, type[Importer]] = {
    importer.kind: importer
    for importer in (
        CustomerImporter,
        LocationImporter,
        InstrumentImporter,
        TicketImporter,
        UserImporter,
    )
}


def fields_for(kind: str) -> tuple[Field, ...]:
    return IMPORTERS[kind].fields


def required_fields(kind: str) -> list[Field]:
    return [f for f in IMPORTERS[kind].fields if f.required]
