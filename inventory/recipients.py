"""Who a mail goes to: selection tokens, their resolution into recipients, and search.

A selection is an ordered list of tokens, as forms submit them and actions store them:
"user:12", "customer:5", "list:3", "system:2", typed addresses ("a@example.com",
"Max Muster <a@example.com>", or the same with an "address:" prefix), and audiences
("audience:matching_customers"): recipients that are found when a run resolves the
selection, never stored as a list (AudienceKind, AudienceContext).

Resolving a selection gives one Recipient per e-mail address: distribution lists are
expanded to their members, a customer with several contact addresses yields one
Recipient per address. Each Recipient carries the Scope its report covers (a customer's
records, a user's; for an address that belongs to neither, the scope the caller chose,
no report by default) and the language its mail is written in. Addresses are
de-duplicated case-insensitively; the first occurrence wins and the order is kept.

Resolution reads a bounded number of queries whatever the selection's size (one or a few
per kind of token) and never checks permissions: check_selection() does that when a user
makes the selection. What a user may pick is also all that is described to them
(describe_selection()): anything else, hidden or gone, is an "unknown selection", so a
guessed id reveals neither a name nor whether it exists.
"""

import datetime
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from enum import StrEnum
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import validate_email
from django.db.models import Exists, Model, OuterRef, Prefetch, Q, QuerySet
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from calmail.common.mailtypes import AddressType
from inventory.models import Customer, CustomerContact, DistributionList, SystemAddress
from inventory.selectors import (
    RecordKind,
    Scope,
    ScopeKind,
    customers_with_matching_records,
    has_role,
    users_with_matching_records,
    visible_distribution_lists,
)

__all__ = [
    "AddressType",
    "AudienceContext",
    "AudienceKind",
    "Choice",
    "Recipient",
    "Resolution",
    "Scope",
    "ScopeKind",
    "SelectionItem",
    "Skipped",
    "TokenKind",
    "check_selection",
    "describe_selection",
    "format_address",
    "parse_address",
    "parse_token",
    "parse_tokens",
    "resolve_recipients",
    "resolve_selection",
    "search_recipients",
    "split_recipient_text",
    "unavailable_references",
    "usable_references",
]


class TokenKind(StrEnum):
    USER = "user"
    CUSTOMER = "customer"
    LIST = "list"
    SYSTEM = "system"
    ADDRESS = "address"
    AUDIENCE = "audience"


class AudienceKind(StrEnum):
    """Recipients found at run time: "audience:<kind>" tokens."""

    # Every active customer with at least one row of the template's report.
    MATCHING_CUSTOMERS = "matching_customers"
    # The active users responsible for those rows.
    RESPONSIBLE_USERS = "responsible_users"
    # Every active customer, rows or not.
    ACTIVE_CUSTOMERS = "active_customers"


AUDIENCE_LABELS = {
    AudienceKind.MATCHING_CUSTOMERS: gettext_lazy("Customers with matching records"),
    AudienceKind.RESPONSIBLE_USERS: gettext_lazy("Responsible persons of matching records"),
    AudienceKind.ACTIVE_CUSTOMERS: gettext_lazy("All active customers"),
}
AUDIENCE_DETAILS = {
    AudienceKind.MATCHING_CUSTOMERS: gettext_lazy(
        "Each customer with rows in the report, with only their rows; found when the action runs."
    ),
    AudienceKind.RESPONSIBLE_USERS: gettext_lazy(
        "Each user responsible for rows of the report, with only those rows; found when the action runs."
    ),
    AudienceKind.ACTIVE_CUSTOMERS: gettext_lazy(
        "Every active customer, each with their own rows; found when the action runs."
    ),
}
# Audiences made of customers: only for users who may see customers.
CUSTOMER_AUDIENCES = frozenset({AudienceKind.MATCHING_CUSTOMERS, AudienceKind.ACTIVE_CUSTOMERS})


@dataclass(frozen=True)
class AudienceContext:
    """What a run knows that its audiences depend on: the kind of records the template's
    report lists (None: no report, or one that cannot say whose its rows are), its due
    filter and window, and the run's day."""

    report_kind: RecordKind | None
    due_filter: str
    window_days: int
    today: datetime.date


REFERENCE_KINDS = (TokenKind.USER, TokenKind.CUSTOMER, TokenKind.LIST, TokenKind.SYSTEM)
MAX_NAME_LENGTH = 200

_M = TypeVar("_M", bound=Model)


def format_address(email: str, name: str = "") -> str:
    """ "Name <address>", the name quoted where needed; the bare address without a name."""
    if not name:
        return email
    try:
        return str(Address(display_name=name, addr_spec=email))
    except (ValueError, IndexError, HeaderParseError):
        # The stdlib parser is stricter than Django's validator for a few exotic forms.
        return '"{}" <{}>'.format(name.replace("\\", "\\\\").replace('"', '\\"'), email)


@dataclass(frozen=True)
class Recipient:
    """One address a mail goes to, and what the mail for it is built from."""

    email: str
    # Display name for the To header: the person, contact or address name.
    name: str
    # "de" / "en"; None for a typed address: the template's default language applies.
    language: str | None
    address_type: AddressType
    # Whom the address belongs to, as shown in the outbox: "Max Muster", "1001 · Muster GmbH".
    owner: str
    # Which rows the recipient's report covers.
    scope: Scope
    # The member it came from ("user:12", "customer:5", "system:2", "address:…").
    source: str
    # The distribution list it was reached through, by name ("" when named directly).
    via: str = ""

    @property
    def formatted(self) -> str:
        """ "Name <address>" for a header (quoted where needed), or the bare address."""
        return format_address(self.email, self.name)


@dataclass(frozen=True)
class Skipped:
    """A selected recipient that yields no address, and why (for the action's log)."""

    source: str
    label: str
    reason: str
    # The reason's English msgid, so a stored record can show it in its reader's
    # language (calmail.common.i18n); "" where the reason is no fixed text.
    reason_msgid: str = ""


@dataclass
class Resolution:
    recipients: list[Recipient] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __iter__(self) -> Iterator[Recipient]:
        return iter(self.recipients)

    def __len__(self) -> int:
        return len(self.recipients)

    @property
    def emails(self) -> list[str]:
        return [recipient.email for recipient in self.recipients]


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionItem:
    """A parsed token: a reference (kind + pk) or a typed address (email + name)."""

    kind: TokenKind
    pk: int | None = None
    email: str = ""
    name: str = ""
    audience: AudienceKind | None = None

    @property
    def token(self) -> str:
        if self.kind == TokenKind.ADDRESS:
            return f"address:{format_address(self.email, self.name)}"
        if self.kind == TokenKind.AUDIENCE:
            return f"audience:{self.audience}"
        return f"{self.kind}:{self.pk}"

    @property
    def key(self) -> tuple:
        """What makes two items the same choice (a repeat is dropped)."""
        if self.kind == TokenKind.ADDRESS:
            return (self.kind, self.email.lower())
        if self.kind == TokenKind.AUDIENCE:
            return (self.kind, self.audience)
        return (self.kind, self.pk)


_PREFIX = re.compile(r"^([A-Za-z]+):(.*)$", re.DOTALL)
_NAMED_ADDRESS = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<email>[^<>]+)>$")


def parse_token(text: str) -> SelectionItem:
    """Parse one token; raises ValidationError with a message that names the token."""
    text = (text or "").strip()
    if not text:
        raise ValidationError(_("An empty recipient was given."), code="empty")
    match = _PREFIX.match(text)
    if match:
        prefix, rest = match.group(1).lower(), match.group(2).strip()
        if prefix in REFERENCE_KINDS:
            if not rest.isascii() or not rest.isdigit() or int(rest) == 0:
                raise ValidationError(
                    _("“%(token)s”: after “%(kind)s:” a number is expected."),
                    code="bad_reference",
                    params={"token": text, "kind": prefix},
                )
            return SelectionItem(kind=TokenKind(prefix), pk=int(rest))
        if prefix == TokenKind.ADDRESS:
            return parse_address(rest, token=text)
        if prefix == TokenKind.AUDIENCE:
            if rest not in set(AudienceKind):
                raise ValidationError(
                    _("“%(token)s” is not a known audience."),
                    code="unknown_audience",
                    params={"token": text},
                )
            return SelectionItem(kind=TokenKind.AUDIENCE, audience=AudienceKind(rest))
        raise ValidationError(
            _(
                "“%(token)s” is not a known kind of recipient. Use user:, customer:, list:, system: or an e-mail address."
            ),
            code="unknown_kind",
            params={"token": text},
        )
    return parse_address(text, token=text)


def parse_address(text: str, *, token: str | None = None) -> SelectionItem:
    """A typed address, "a@example.com" or "Name <a@example.com>"; ValidationError if not."""
    text = text.strip()
    token = text if token is None else token
    name, email = "", text
    match = _NAMED_ADDRESS.match(text)
    if match:
        name = match.group("name").strip().strip('"').strip()
        email = match.group("email").strip()
    invalid = ValidationError(
        _("“%(token)s” is not a valid e-mail address."),
        code="invalid_address",
        params={"token": token},
    )
    # A line break or control character in a name would end up in a mail header.
    if any(ord(char) < 32 for char in name) or len(name) > MAX_NAME_LENGTH:
        raise invalid
    try:
        validate_email(email)
    except ValidationError:
        raise invalid from None
    return SelectionItem(kind=TokenKind.ADDRESS, email=email, name=name)


def parse_tokens(selection: Iterable[SelectionItem | str]) -> list[SelectionItem]:
    """Parse tokens (already parsed items pass through) in order, repeats dropped; every
    bad token is reported at once in one ValidationError."""
    items, seen, errors = [], set(), []
    for entry in selection:
        if isinstance(entry, str):
            try:
                entry = parse_token(entry)
            except ValidationError as exc:
                errors.append(exc)
                continue
        key = entry.key
        if key not in seen:
            seen.add(key)
            items.append(entry)
    if errors:
        raise ValidationError(errors)
    return items


def split_recipient_text(text: str) -> list[str]:
    """Split free text into tokens at commas, semicolons and line breaks, except inside
    quotes or angle brackets ("Muster, Max" <max@example.com> stays one token)."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = bracketed = False
    for char in text or "":
        if char == '"' and not bracketed:
            quoted = not quoted
        elif char == "<" and not quoted:
            bracketed = True
        elif char == ">" and not quoted:
            bracketed = False
        if char in ",;\n\r" and not quoted and not bracketed:
            tokens.append("".join(current))
            current = []
        else:
            current.append(char)
    tokens.append("".join(current))
    return [token.strip() for token in tokens if token.strip()]


# --- loading ------------------------------------------------------------------------------


def active_contacts() -> Prefetch:
    """A customer's contact addresses that may be mailed: those calServer still lists."""
    return Prefetch("contacts", queryset=CustomerContact.objects.filter(is_active=True))


def _user_queryset() -> QuerySet[User]:
    return get_user_model().objects.select_related("profile")


def _customer_queryset() -> QuerySet[Customer]:
    return Customer.objects.prefetch_related(active_contacts())


@dataclass
class _Loaded:
    users: dict[int, User]
    customers: dict[int, Customer]
    lists: dict[int, DistributionList]
    systems: dict[int, SystemAddress]


def _ids_by_kind(items: Iterable[SelectionItem]) -> dict[TokenKind, set[int]]:
    ids: dict[TokenKind, set[int]] = {kind: set() for kind in REFERENCE_KINDS}
    for item in items:
        if item.kind in ids and item.pk is not None:
            ids[item.kind].add(item.pk)
    return ids


def _load(items: Sequence[SelectionItem]) -> _Loaded:
    """One or a few queries per kind of token, only for the kinds present."""
    ids = _ids_by_kind(items)

    def by_pk(queryset: QuerySet[_M], kind: TokenKind) -> dict[int, _M]:
        if not ids[kind]:
            return {}
        return {obj.pk: obj for obj in queryset.filter(pk__in=ids[kind])}

    lists = DistributionList.objects.prefetch_related(
        Prefetch(
            "users",
            queryset=_user_queryset().order_by("last_name", "first_name", "username", "pk"),
        ),
        Prefetch("customers", queryset=_customer_queryset().order_by("number")),
        "addresses",
    )
    return _Loaded(
        users=by_pk(_user_queryset(), TokenKind.USER),
        customers=by_pk(_customer_queryset(), TokenKind.CUSTOMER),
        lists=by_pk(lists, TokenKind.LIST),
        systems=by_pk(SystemAddress.objects.all(), TokenKind.SYSTEM),
    )


def user_display_name(user: User) -> str:
    return user.get_full_name() or user.get_username()


def user_language(user: User) -> str:
    """The user's profile language; the installation's language without a profile."""
    try:
        return user.profile.language
    except ObjectDoesNotExist:
        return str(settings.LANGUAGE_CODE)


# --- resolution ---------------------------------------------------------------------------


class _Collector:
    def __init__(
        self,
        *,
        other_scope: Scope | None = None,
        audience: AudienceContext | None = None,
        per_report: bool = False,
    ) -> None:
        self.resolution = Resolution()
        self._seen: set[str] = set()
        self._per_report = per_report
        self._audience = audience
        # The report scope of addresses that belong to no customer or user. "All
        # customers" is for system (internal) addresses only: a typed address or a list's
        # extra address gets no report instead, even if a list gained one after the check.
        self.system_scope = other_scope or Scope.none()
        self.address_scope = (
            Scope.none() if self.system_scope.kind == ScopeKind.ALL else self.system_scope
        )

    def add(self, recipient: Recipient) -> None:
        key = recipient.email.strip().lower()
        if self._per_report and recipient.scope.kind == ScopeKind.CUSTOMER:
            # A contact address two customers share: each customer's records go in a
            # mail of their own (one mail would leave one customer's records out).
            key = f"{key} {recipient.scope}"
        if key not in self._seen:
            self._seen.add(key)
            self.resolution.recipients.append(recipient)

    def skip(self, source: str, label: str, reason_msgid: str) -> None:
        """reason_msgid: a gettext_noop() text, translated now and kept as it is."""
        self.resolution.skipped.append(
            Skipped(source=source, label=label, reason=_(reason_msgid), reason_msgid=reason_msgid)
        )

    def add_user(self, user: User, *, via: str = "") -> None:
        source, label = f"user:{user.pk}", user_display_name(user)
        if not user.is_active:
            self.skip(source, label, gettext_noop("the user is deactivated"))
        elif not user.email:
            self.skip(source, label, gettext_noop("the user has no e-mail address"))
        else:
            self.add(
                Recipient(
                    email=user.email,
                    name=label,
                    language=user_language(user),
                    address_type=AddressType.DISTRIBUTION if via else AddressType.USER,
                    owner=label,
                    scope=Scope.user(user.pk),
                    source=source,
                    via=via,
                )
            )

    def add_customer(
        self,
        customer: Customer,
        *,
        via: str = "",
        contacts: Sequence[CustomerContact] | None = None,
    ) -> None:
        source = f"customer:{customer.pk}"
        if not customer.is_active:
            self.skip(source, customer.label, gettext_noop("the customer is inactive"))
            return
        if contacts is None:
            contacts = list(customer.contacts.all())
        if not contacts:
            self.skip(
                source, customer.label, gettext_noop("the customer has no contact e-mail address")
            )
        for contact in contacts:
            self.add(
                Recipient(
                    email=contact.email,
                    name=contact.name or customer.name,
                    language=customer.language,
                    address_type=AddressType.DISTRIBUTION if via else AddressType.CUSTOMER,
                    owner=customer.label,
                    scope=Scope.customer(customer.pk),
                    source=source,
                    via=via,
                )
            )

    def add_list(self, distribution_list: DistributionList) -> None:
        via = distribution_list.name
        users = list(distribution_list.users.all())
        customers = list(distribution_list.customers.all())
        addresses = list(distribution_list.addresses.all())
        if not (users or customers or addresses):
            self.skip(
                f"list:{distribution_list.pk}",
                via,
                gettext_noop("the distribution list has no members"),
            )
        for user in users:
            self.add_user(user, via=via)
        for customer in customers:
            self.add_customer(customer, via=via)
        for address in addresses:
            self.add(
                Recipient(
                    email=address.email,
                    name=address.name,
                    language=None,
                    address_type=AddressType.DISTRIBUTION,
                    owner=via,
                    scope=self.address_scope,
                    source=f"address:{address.email}",
                    via=via,
                )
            )

    def add_system(self, system_address: SystemAddress) -> None:
        self.add(
            Recipient(
                email=system_address.email,
                name=system_address.name,
                language=system_address.language,
                address_type=AddressType.SYSTEM,
                owner=system_address.name,
                scope=self.system_scope,
                source=f"system:{system_address.pk}",
            )
        )

    def add_audience(self, kind: AudienceKind) -> None:
        """The audience's recipients as the run finds them: a few queries, whatever the
        number of customers or users."""
        source, label = f"audience:{kind}", str(AUDIENCE_LABELS[kind])
        context = self._audience
        if kind == AudienceKind.ACTIVE_CUSTOMERS:
            self._add_customers(Customer.objects.filter(is_active=True))
            return
        if context is None:
            # Compose, the template preview: no run, so no report whose rows could match.
            self.skip(source, label, gettext_noop("an audience is found only when an action runs"))
            return
        if context.report_kind is None:
            self.skip(
                source, label, gettext_noop("the template has no report, so no records can match")
            )
            return
        if kind == AudienceKind.MATCHING_CUSTOMERS:
            self._add_customers(
                customers_with_matching_records(
                    kind=context.report_kind,
                    due_filter=context.due_filter,
                    window_days=context.window_days,
                    today=context.today,
                )
            )
            return
        users = users_with_matching_records(
            kind=context.report_kind,
            due_filter=context.due_filter,
            window_days=context.window_days,
            today=context.today,
        )
        for user in users.select_related("profile").order_by(
            "last_name", "first_name", "username", "pk"
        ):
            self.add_user(user)

    def _add_customers(self, customers: QuerySet[Customer]) -> None:
        """Each customer of the queryset by number, one recipient per contact address: two
        queries (the contacts through a subquery, not a list of ids that grows with them)."""
        contacts: dict[int, list[CustomerContact]] = defaultdict(list)
        for contact in CustomerContact.objects.filter(
            customer__in=customers.values("pk"), is_active=True
        ).order_by("customer_id", "position", "id"):
            contacts[contact.customer_id].append(contact)
        for customer in customers.order_by("number"):
            self.add_customer(customer, contacts=contacts.get(customer.pk, []))

    def add_address(self, item: SelectionItem) -> None:
        self.add(
            Recipient(
                email=item.email,
                name=item.name,
                language=None,
                address_type=AddressType.ADDRESS,
                owner="",
                scope=self.address_scope,
                source=item.token,
            )
        )


def resolve_selection(
    selection: Iterable[SelectionItem | str],
    *,
    other_scope: Scope | None = None,
    audience: AudienceContext | None = None,
    per_report: bool = False,
) -> Resolution:
    """Resolve tokens (strings or parsed items) into recipients, in the selection's order.

    An address is there once, the first time it occurs. With per_report (a mail per
    recipient, each with its own report: actions), an address several customers share
    is there once per customer, so that every customer's records go out.

    Users get their own records as report scope, customers theirs. Every other address
    (system addresses, typed addresses, the extra addresses of distribution lists) gets
    other_scope, by default no report; Scope.all() reaches system addresses only, the
    others then get no report.

    Audiences are found now, with what `audience` says about the run (its report, filter
    and day); without it (no run) only the audience of all active customers is.

    References that no longer exist, deactivated users, users without an address,
    inactive customers, customers without a contact address and empty lists are reported
    in `skipped`. Bad token strings raise ValidationError (see parse_tokens).
    """
    items = parse_tokens(selection)
    loaded = _load(items)
    collector = _Collector(other_scope=other_scope, audience=audience, per_report=per_report)
    tables: dict[str, tuple[dict[int, Any], Callable[[Any], None]]] = {
        TokenKind.USER: (loaded.users, collector.add_user),
        TokenKind.CUSTOMER: (loaded.customers, collector.add_customer),
        TokenKind.LIST: (loaded.lists, collector.add_list),
        TokenKind.SYSTEM: (loaded.systems, collector.add_system),
    }
    for item in items:
        if item.kind == TokenKind.ADDRESS:
            collector.add_address(item)
            continue
        if item.kind == TokenKind.AUDIENCE and item.audience is not None:
            collector.add_audience(item.audience)
            continue
        objects, add = tables[item.kind]
        obj = objects.get(item.pk) if item.pk is not None else None
        if obj is None:
            collector.skip(item.token, item.token, gettext_noop("it no longer exists"))
        else:
            add(obj)
    return collector.resolution


def resolve_recipients(
    *,
    users: Iterable[User | int] = (),
    customers: Iterable[Customer | int] = (),
    distribution_lists: Iterable[DistributionList | int] = (),
    system_addresses: Iterable[SystemAddress | int] = (),
    addresses: Iterable[str] = (),
    other_scope: Scope | None = None,
) -> Resolution:
    """Resolve a selection given by kind (instances or ids; typed addresses as text), in
    this order: users, customers, distribution lists, system addresses, typed addresses.
    other_scope: as resolve_selection() takes it."""

    # Any: instances or ids, read duck-typed (an instance's pk, else the value itself).
    def refs(kind: TokenKind, objects: Iterable[Any]) -> list[SelectionItem]:
        return [SelectionItem(kind=kind, pk=int(getattr(obj, "pk", obj))) for obj in objects]

    items = [
        *refs(TokenKind.USER, users),
        *refs(TokenKind.CUSTOMER, customers),
        *refs(TokenKind.LIST, distribution_lists),
        *refs(TokenKind.SYSTEM, system_addresses),
        *(
            address if isinstance(address, SelectionItem) else _parse_typed(address)
            for address in addresses
        ),
    ]
    return resolve_selection(items, other_scope=other_scope)


def _parse_typed(text: str) -> SelectionItem:
    item = parse_token(text)
    if item.kind != TokenKind.ADDRESS:
        item = parse_address(text.strip(), token=text.strip())
    return item


# --- checks and labels --------------------------------------------------------------------


def usable_references(*, user: User | AnonymousUser) -> dict[TokenKind, QuerySet]:
    """What a user may pick as a recipient, and so see, per kind of reference: active
    users, customers and system addresses with the view permission, and the distribution
    lists visible to the user (visible_distribution_lists). Nothing without a role."""
    if not has_role(user):
        return {
            TokenKind.USER: get_user_model().objects.none(),
            TokenKind.CUSTOMER: Customer.objects.none(),
            TokenKind.LIST: DistributionList.objects.none(),
            TokenKind.SYSTEM: SystemAddress.objects.none(),
        }
    customers, systems = Customer.objects.all(), SystemAddress.objects.all()
    return {
        TokenKind.USER: get_user_model().objects.filter(is_active=True),
        TokenKind.CUSTOMER: customers
        if user.has_perm("inventory.view_customer")
        else customers.none(),
        TokenKind.LIST: visible_distribution_lists(user=user),
        TokenKind.SYSTEM: systems
        if user.has_perm("inventory.view_systemaddress")
        else systems.none(),
    }


def usable_audiences(*, user: User | AnonymousUser) -> set[AudienceKind]:
    """The audiences a user may pick: those of customers with the permission to see
    customers, the responsible users with any role."""
    if not has_role(user):
        return set()
    if user.has_perm("inventory.view_customer"):
        return set(AudienceKind)
    return set(AudienceKind) - CUSTOMER_AUDIENCES


def _usable_ids(
    items: Iterable[SelectionItem], *, user: User | AnonymousUser
) -> dict[TokenKind, set[int]]:
    """Of the items' references, the ids the user may use (one query per kind present)."""
    ids = _ids_by_kind(items)
    return {
        kind: set(queryset.filter(pk__in=ids[kind]).values_list("pk", flat=True))
        if ids[kind]
        else set()
        for kind, queryset in usable_references(user=user).items()
    }


def check_selection(
    selection: Iterable[SelectionItem | str], *, user: User | AnonymousUser
) -> list[SelectionItem]:
    """Parse and check a selection a user made: every reference must exist and be usable
    by the user (usable_references). Returns the parsed items or raises ValidationError
    listing every problem."""
    items = parse_tokens(selection)
    found = _usable_ids(items, user=user)
    # Only asked when the selection has an audience: it costs a query.
    audiences = (
        usable_audiences(user=user)
        if any(item.kind == TokenKind.AUDIENCE for item in items)
        else set()
    )
    errors = [
        ValidationError(
            _("The recipient %(token)s does not exist or is not available to you."),
            code="unavailable",
            params={"token": item.token},
        )
        for item in items
        if (item.kind in found and item.pk not in found[item.kind])
        or (item.kind == TokenKind.AUDIENCE and item.audience not in audiences)
    ]
    if errors:
        raise ValidationError(errors)
    return items


def unavailable_references(
    tokens: Sequence[str], *, user: User | AnonymousUser
) -> list[tuple[int, SelectionItem]]:
    """The references among the tokens that the user may not use, with their position
    (from 1), for an error that points at the token. A missing object and one the user
    may not see are alike. Tokens that do not parse are left to parse_tokens()."""
    references, audiences = [], []
    for position, token in enumerate(tokens, start=1):
        try:
            item = parse_token(token)
        except ValidationError:
            continue
        if item.kind in REFERENCE_KINDS:
            references.append((position, item))
        elif item.kind == TokenKind.AUDIENCE:
            audiences.append((position, item))
    found = _usable_ids([item for _position, item in references], user=user)
    usable = usable_audiences(user=user) if audiences else set()
    unavailable = [
        (position, item) for position, item in references if item.pk not in found[item.kind]
    ]
    unavailable += [(position, item) for position, item in audiences if item.audience not in usable]
    return sorted(unavailable, key=lambda entry: entry[0])


# --- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """An autocomplete entry: the token to submit and what to show."""

    token: str
    label: str
    kind: TokenKind
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "token": self.token,
            "label": self.label,
            "kind": str(self.kind),
            "kind_label": str(KIND_LABELS[self.kind]),
            "detail": self.detail,
        }


KIND_LABELS = {
    TokenKind.USER: gettext_lazy("User"),
    TokenKind.CUSTOMER: gettext_lazy("Customer"),
    TokenKind.LIST: gettext_lazy("Distribution list"),
    TokenKind.SYSTEM: gettext_lazy("System address"),
    TokenKind.ADDRESS: gettext_lazy("Typed address"),
    TokenKind.AUDIENCE: gettext_lazy("Audience"),
}
MAX_SEARCH_WORDS = 5


def _words_filter(
    words: list[str], fields: Sequence[str], extra: Callable[[str], Q] | None = None
) -> Q:
    """Every word must match one of the fields (so "max muster" finds Max Muster)."""
    condition = Q()
    for word in words:
        any_field = Q()
        for name in fields:
            any_field |= Q(**{f"{name}__icontains": word})
        if extra is not None:
            any_field |= extra(word)
        condition &= any_field
    return condition


def _user_choice(user: User) -> Choice:
    return Choice(
        token=f"user:{user.pk}",
        label=user_display_name(user),
        kind=TokenKind.USER,
        detail=user.email,
    )


def _customer_choice(customer: Customer) -> Choice:
    return Choice(
        token=f"customer:{customer.pk}",
        label=customer.label,
        kind=TokenKind.CUSTOMER,
        detail=", ".join(contact.email for contact in customer.contacts.all()),
    )


def _list_choice(distribution_list: DistributionList) -> Choice:
    return Choice(
        token=f"list:{distribution_list.pk}",
        label=distribution_list.name,
        kind=TokenKind.LIST,
        detail=distribution_list.description,
    )


def _system_choice(system_address: SystemAddress) -> Choice:
    return Choice(
        token=f"system:{system_address.pk}",
        label=system_address.name,
        kind=TokenKind.SYSTEM,
        detail=system_address.email,
    )


def _audience_choice(kind: AudienceKind) -> Choice:
    return Choice(
        token=f"audience:{kind}",
        label=str(AUDIENCE_LABELS[kind]),
        kind=TokenKind.AUDIENCE,
        detail=str(AUDIENCE_DETAILS[kind]),
    )


def _matching_audiences(words: list[str], *, user: User | AnonymousUser) -> list[Choice]:
    """The usable audiences whose label (in the active language or in English) has every
    word of the query."""
    usable = usable_audiences(user=user)
    choices = []
    for kind in AudienceKind:
        label = AUDIENCE_LABELS[kind]
        with translation.override("en"):
            english = str(label)
        texts = f"{label} {english}".lower()
        if kind in usable and all(word.lower() in texts for word in words):
            choices.append(_audience_choice(kind))
    return choices


def search_recipients(
    query: str, *, user: User | AnonymousUser, limit: int = 20, audiences: bool = False
) -> list[Choice]:
    """Users, customers (number, name, contact addresses), distribution lists and system
    addresses the user may use (usable_references) matching every word of the query,
    grouped in that order; with audiences=True (action forms: an audience is found when
    the action runs) first the usable audiences whose label matches.

    When several kinds match, the limit is shared among them so that no kind crowds out
    the others. A query that is an e-mail address is also offered as a typed address.
    """
    words = (query or "").split()[:MAX_SEARCH_WORDS]
    if not words or limit < 1:
        return []
    usable = usable_references(user=user)
    users = (
        usable[TokenKind.USER]
        .exclude(email="")
        .filter(_words_filter(words, ("username", "first_name", "last_name", "email")))
        .order_by("last_name", "first_name", "username")[:limit]
    )
    customers = (
        usable[TokenKind.CUSTOMER]
        .filter(
            _words_filter(
                words,
                ("number", "name", "city"),
                extra=lambda word: Q(
                    Exists(
                        CustomerContact.objects.filter(
                            customer=OuterRef("pk"), email__icontains=word
                        )
                    )
                ),
            )
        )
        .prefetch_related(active_contacts())
        .order_by("number")[:limit]
    )
    lists = usable[TokenKind.LIST].filter(_words_filter(words, ("name", "description")))[:limit]
    systems = usable[TokenKind.SYSTEM].filter(
        _words_filter(words, ("name", "email", "description"))
    )[:limit]
    groups = [
        _matching_audiences(words, user=user) if audiences else [],
        [_user_choice(obj) for obj in users],
        [_customer_choice(obj) for obj in customers],
        [_list_choice(obj) for obj in lists],
        [_system_choice(obj) for obj in systems],
    ]
    typed = None
    try:
        item = parse_address(query.strip(), token=query.strip())
    except ValidationError:
        pass
    else:
        typed = Choice(token=item.token, label=item.email, kind=TokenKind.ADDRESS, detail=item.name)
        limit -= 1
    # Round robin: each kind in turn gets one more entry until the limit is reached.
    taken = [0] * len(groups)
    remaining = limit
    while remaining > 0 and any(taken[i] < len(group) for i, group in enumerate(groups)):
        for index, group in enumerate(groups):
            if remaining and taken[index] < len(group):
                taken[index] += 1
                remaining -= 1
    choices = [choice for index, group in enumerate(groups) for choice in group[: taken[index]]]
    if typed is not None:
        choices.append(typed)
    return choices


def describe_selection(
    selection: Iterable[SelectionItem | str], *, user: User | AnonymousUser
) -> list[Choice]:
    """Labels for stored tokens (to show a saved selection again), in the same order.

    Only what the user may use (usable_references) is described; a reference to anything
    else, hidden from the user or gone, keeps its token as label, marked as an unknown
    selection, so that a guessed id reveals neither a name nor whether it exists."""
    items = parse_tokens(selection)
    ids = _ids_by_kind(items)
    usable = usable_references(user=user)
    usable[TokenKind.CUSTOMER] = usable[TokenKind.CUSTOMER].prefetch_related(active_contacts())
    loaded = {
        kind: {obj.pk: obj for obj in queryset.filter(pk__in=ids[kind])} if ids[kind] else {}
        for kind, queryset in usable.items()
    }
    make: dict[TokenKind, Callable[[Any], Choice]] = {
        TokenKind.USER: _user_choice,
        TokenKind.CUSTOMER: _customer_choice,
        TokenKind.LIST: _list_choice,
        TokenKind.SYSTEM: _system_choice,
    }
    audiences = (
        usable_audiences(user=user)
        if any(item.kind == TokenKind.AUDIENCE for item in items)
        else set()
    )
    choices = []
    for item in items:
        if item.kind == TokenKind.AUDIENCE and item.audience in audiences:
            choices.append(_audience_choice(item.audience))
            continue
        if item.kind == TokenKind.ADDRESS:
            choices.append(
                Choice(token=item.token, label=item.email, kind=TokenKind.ADDRESS, detail=item.name)
            )
            continue
        obj = loaded[item.kind].get(item.pk) if item.kind in loaded else None
        if obj is None:
            choices.append(
                Choice(
                    token=item.token,
                    label=_("%(token)s (unknown selection)") % {"token": item.token},
                    kind=item.kind,
                )
            )
        else:
            choices.append(make[item.kind](obj))
    return choices


def describe_text(text: str, *, user: User | AnonymousUser) -> list[dict]:
    """describe_selection for a recipient field's text, as the search endpoint answers:
    the recipient picker's chips for the tokens a field holds already."""
    return [
        choice.as_dict() for choice in describe_selection(split_recipient_text(text), user=user)
    ]
