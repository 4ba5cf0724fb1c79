"""What a calServer record becomes in calmail: the kinds, their calmail fields, the
presets, and reading a record through a mapping.

calServer's field codes and attribute names differ per installation and version
(../shared/docs/CALSERVER-API.md), so nothing here is hard-coded except the presets an
administrator starts from. A mapping is {calmail field: calServer path}; a path is
dot-separated (`attributes.asset_number`, `inventory.I4201`, `relationships.customer.data.id`),
a number in it indexes a list.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _

from inventory.models import MAX_INTERVAL_MONTHS, Language, TicketStatus

# The order a sync runs in: contacts, locations, instruments and tickets name a customer.
KINDS = ("customers", "contacts", "locations", "instruments", "tickets")
KIND_LABELS = {
    "customers": _("Customers"),
    "contacts": _("Contacts"),
    "locations": _("Locations"),
    "instruments": _("Instruments"),
    "tickets": _("Support tickets"),
}

# Value types of calmail fields; each has a parser below.
TEXT, INTEGER, DATE, DATETIME, EMAIL, LANGUAGE, STATUS, REFERENCE = (
    "text",
    "integer",
    "date",
    "datetime",
    "email",
    "language",
    "status",
    "reference",
)

# calmail field -> type, per kind. "external_id" is calServer's id of the record;
# "customer"/"location" name the calServer id of the record they point to.
TARGETS: dict[str, dict[str, str]] = {
    "customers": {
        "external_id": TEXT,
        "number": TEXT,
        "name": TEXT,
        "city": TEXT,
        "language": LANGUAGE,
    },
    "contacts": {
        "external_id": TEXT,
        "customer": REFERENCE,
        "email": EMAIL,
        "name": TEXT,
    },
    "locations": {
        "external_id": TEXT,
        "customer": REFERENCE,
        "name": TEXT,
        "city": TEXT,
    },
    "instruments": {
        "external_id": TEXT,
        "inventory_number": TEXT,
        "description": TEXT,
        "manufacturer": TEXT,
        "model": TEXT,
        "serial_number": TEXT,
        "customer": REFERENCE,
        "location": REFERENCE,
        # v2 names the location as text: found by name among the customer's locations.
        "location_name": TEXT,
        "last_calibration": DATE,
        "calibration_interval_months": INTEGER,
    },
    "tickets": {
        "external_id": TEXT,
        "number": TEXT,
        "subject": TEXT,
        "status": STATUS,
        "customer": REFERENCE,
        "due_date": DATE,
        "created_at": DATETIME,
    },
}
# Without these a record cannot be stored.
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("external_id", "number", "name"),
    "contacts": ("external_id", "customer", "email"),
    "locations": ("external_id", "customer", "name"),
    "instruments": ("external_id", "inventory_number", "description", "customer"),
    "tickets": ("external_id", "number", "subject", "customer"),
}

# Presets. v2: the documented attributes of /api/v2/inventories; the customers path and
# its attributes are inferred from the permission names (not documented). v1: the codes
# the reference names (MTAG, KTAG, I4201-I4206, K4602); labels differ per installation.
PRESETS: dict[str, dict[str, Any]] = {
    "v2": {
        "paths": {
            "customers": "/api/v2/customers",
            "contacts": "",
            "locations": "",
            "instruments": "/api/v2/inventories",
            "tickets": "",
        },
        "mapping": {
            "customers": {
                "external_id": "id",
                "number": "attributes.customer_number",
                "name": "attributes.name",
                "city": "attributes.city",
            },
            "contacts": {},
            "locations": {},
            "instruments": {
                "external_id": "id",
                "inventory_number": "attributes.asset_number",
                "serial_number": "attributes.serial_number",
                "description": "attributes.description",
                "manufacturer": "attributes.manufacturer",
                "model": "attributes.model",
                "location_name": "attributes.location",
                "calibration_interval_months": "attributes.calibration_interval",
                "customer": "relationships.customer.data.id",
            },
            "tickets": {},
        },
    },
    "v1": {
        "paths": {
            "customers": "/api/customer",
            "contacts": "",
            "locations": "",
            "instruments": "/api/inventory",
            "tickets": "",
        },
        "mapping": {
            "customers": {"external_id": "KTAG", "number": "KTAG", "name": "K4602"},
            "contacts": {},
            "locations": {},
            "instruments": {
                "external_id": "MTAG",
                "inventory_number": "I4201",
                "manufacturer": "I4202",
                "model": "I4203",
                "description": "I4204",
                "serial_number": "I4206",
                "customer": "KTAG",
            },
            "tickets": {},
        },
    },
}

PATH_RE = re.compile(r"^[A-Za-z0-9_\-\[\]]+(\.[A-Za-z0-9_\-\[\]]+)*$")
MISSING = object()

_CLOSED = {"closed", "geschlossen", "done", "erledigt", "resolved", "gelöst", "1", "true"}
_OPEN = {"open", "offen", "new", "neu", "in progress", "in bearbeitung", "0", "false"}


def preset(version: str) -> dict[str, Any]:
    """A copy of the preset of API version `version`, safe to change."""
    chosen = PRESETS[version]
    return {
        "paths": dict(chosen["paths"]),
        "mapping": {kind: dict(fields) for kind, fields in chosen["mapping"].items()},
    }


def resolve(record: Any, path: str) -> Any:
    """The value at `path` in the record, or MISSING."""
    value = record
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def leaf_paths(record: Any, prefix: str = "") -> list[str]:
    """Every path to a value that is not an object, for marking unmapped fields."""
    if isinstance(record, dict) and record:
        paths = []
        for key, value in record.items():
            paths.extend(leaf_paths(value, f"{prefix}{key}."))
        return paths
    return [prefix.rstrip(".")] if prefix else []


class Unparsable(ValueError):
    pass


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise Unparsable(_("a text was expected, not a list or object"))
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def parse_value(kind_type: str, value: Any) -> Any:
    """The calmail value of a calServer value, or Unparsable with a reason."""
    if kind_type in (TEXT, REFERENCE):
        return _text(value)
    if value is None or value == "":
        if kind_type == STATUS:
            return TicketStatus.OPEN
        return None
    if kind_type == INTEGER:
        if isinstance(value, bool):
            raise Unparsable(_("a whole number was expected"))
        try:
            number = int(str(value).strip())
        except ValueError:
            raise Unparsable(_("a whole number was expected")) from None
        if not 1 <= number <= MAX_INTERVAL_MONTHS:
            raise Unparsable(_("must be between 1 and %(max)s") % {"max": MAX_INTERVAL_MONTHS})
        return number
    if kind_type == DATE:
        text = _text(value)
        parsed = _parse_date(text)
        if parsed is None:
            raise Unparsable(_("a date was expected (2026-12-31 or 31.12.2026)"))
        return parsed
    if kind_type == DATETIME:
        text = _text(value)
        try:
            moment = parse_datetime(text)
        except ValueError:
            moment = None
        if moment is None:
            day = _parse_date(text)
            if day is None:
                raise Unparsable(_("a date and time was expected (ISO 8601)"))
            moment = dt.datetime.combine(day, dt.time())
        if moment.tzinfo is None:
            moment = timezone.make_aware(moment)
        return moment
    if kind_type == EMAIL:
        text = _text(value)
        try:
            validate_email(text)
        except ValidationError:
            raise Unparsable(_("not an e-mail address")) from None
        return text
    if kind_type == LANGUAGE:
        code = _text(value).lower()[:2]
        if code not in Language.values:
            raise Unparsable(_("a language was expected (de or en)"))
        return code
    if kind_type == STATUS:
        text = _text(value).lower()
        if text in _CLOSED:
            return TicketStatus.CLOSED
        if text in _OPEN:
            return TicketStatus.OPEN
        raise Unparsable(_("a ticket status was expected (open or closed)"))
    raise Unparsable(kind_type)


def _parse_date(text: str) -> dt.date | None:
    try:
        parsed = parse_date(text[:10])
    except ValueError:
        return None
    if parsed is not None:
        return parsed
    try:
        return dt.datetime.strptime(text, "%d.%m.%Y").date()
    except ValueError:
        return None


@dataclass
class MappedField:
    target: str
    source: str
    raw: Any = None
    value: Any = None
    error: str = ""
    missing: bool = False


@dataclass
class MappedRecord:
    """A record read through a mapping: the values, what went wrong, what was left out."""

    raw: Any
    fields: list[MappedField] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, Any]:
        return {f.target: f.value for f in self.fields if not f.error and not f.missing}

    @property
    def external_id(self) -> str:
        return str(self.values.get("external_id") or "")

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def raw_json(self) -> str:
        return json.dumps(self.raw, indent=2, ensure_ascii=False, default=str)


def map_record(kind: str, mapping: dict[str, str], raw: Any) -> MappedRecord:
    """Read one calServer record through the kind's mapping."""
    result = MappedRecord(raw=raw)
    if not isinstance(raw, dict):
        result.problems.append(str(_("the record is not a JSON object")))
        return result
    types = TARGETS[kind]
    for target, source in mapping.items():
        mapped = MappedField(target=target, source=source)
        value = resolve(raw, source)
        if value is MISSING:
            mapped.missing = True
        else:
            mapped.raw = value
            try:
                mapped.value = parse_value(types[target], value)
            except Unparsable as exc:
                mapped.error = str(exc.args[0]) if exc.args else ""
        result.fields.append(mapped)
    used = set(mapping.values())
    result.unmapped = [
        path
        for path in leaf_paths(raw)
        if path not in used and not any(path.startswith(f"{source}.") for source in used)
    ]
    values = result.values
    for mapped in result.fields:
        if mapped.error:
            result.problems.append(f"{mapped.target} ({mapped.source}): {mapped.error}")
    for target in REQUIRED[kind]:
        if values.get(target) in (None, ""):
            result.problems.append(str(_("%(field)s is missing") % {"field": target}))
    return result


def mapping_errors(kind: str, mapping: dict[str, str]) -> list[str]:
    """What is wrong with a stored mapping (used by the model's clean)."""
    errors = []
    for target, source in mapping.items():
        if target not in TARGETS[kind]:
            errors.append(str(_("%(field)s is not a calmail field") % {"field": target}))
        if not isinstance(source, str) or not PATH_RE.match(source):
            errors.append(str(_("%(path)s is not a field path") % {"path": source}))
    return errors


def parse_mapping_text(kind: str, text: str) -> tuple[dict[str, str], list[str]]:
    """Lines "calmail field = calServer path" (# starts a comment) -> mapping and the
    errors, one per bad line, naming the line."""
    mapping: dict[str, str] = {}
    errors: list[str] = []
    targets = TARGETS[kind]
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            errors.append(
                str(_("Line %(line)s: write “calmail field = calServer field”.") % {"line": number})
            )
            continue
        target, source = (part.strip() for part in line.split("=", 1))
        if target not in targets:
            errors.append(
                str(
                    _(
                        "Line %(line)s: “%(field)s” is not a calmail field here; use one of: %(fields)s."
                    )
                    % {"line": number, "field": target, "fields": ", ".join(targets)}
                )
            )
            continue
        if not PATH_RE.match(source):
            errors.append(
                str(
                    _(
                        "Line %(line)s: “%(path)s” is not a calServer field or path (like I4201 or attributes.asset_number)."
                    )
                    % {"line": number, "path": source}
                )
            )
            continue
        if target in mapping:
            errors.append(
                str(
                    _("Line %(line)s: %(field)s is mapped twice.")
                    % {"line": number, "field": target}
                )
            )
            continue
        mapping[target] = source
    return mapping, errors


def mapping_text(mapping: dict[str, str]) -> str:
    return "\n".join(f"{target} = {source}" for target, source in mapping.items())
