import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import services
from inventory.recipients import (
    AddressType,
    Recipient,
    Scope,
    SelectionItem,
    Skipped,
    TokenKind,
    check_selection,
    describe_selection,
    parse_token,
    parse_tokens,
    resolve_recipients,
    resolve_selection,
    search_recipients,
    split_recipient_text,
    unavailable_references,
)
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    SystemAddressFactory,
    UserFactory,
)


@pytest.fixture
def max_muster(db):
    user = UserFactory(
        username="mmuster", first_name="Max", last_name="Muster", email="max@calserver.example"
    )
    services.profile_set_language(user=user, language="en")
    return user


@pytest.fixture
def muster_gmbh(db):
    return CustomerFactory(
        number="1001",
        name="Muster GmbH",
        language="en",
        emails=["einkauf@muster.example", "qs@muster.example"],
    )


# --- resolution: each kind ------------------------------------------------------------------


def test_resolve_user_with_profile_language(max_muster):
    resolution = resolve_selection([f"user:{max_muster.pk}"])

    assert resolution.recipients == [
        Recipient(
            email="max@calserver.example",
            name="Max Muster",
            language="en",
            address_type=AddressType.USER,
            owner="Max Muster",
            scope=Scope.user(max_muster.pk),
            source=f"user:{max_muster.pk}",
        )
    ]
    assert resolution.skipped == []


def test_resolve_user_without_profile_gets_installation_language(db, settings):
    settings.LANGUAGE_CODE = "de"
    user = UserFactory(username="ohne-profil", email="ohne@calserver.example")

    (recipient,) = resolve_selection([f"user:{user.pk}"])

    assert (recipient.name, recipient.language) == ("ohne-profil", "de")


def test_resolve_customer_with_two_addresses_gives_two_recipients_with_same_scope(muster_gmbh):
    recipients = resolve_selection([f"customer:{muster_gmbh.pk}"]).recipients

    assert [
        (r.email, r.name, r.owner, r.scope, r.address_type, r.language) for r in recipients
    ] == [
        (
            "einkauf@muster.example",
            "Muster GmbH",
            "1001 · Muster GmbH",
            Scope.customer(muster_gmbh.pk),
            "customer",
            "en",
        ),
        (
            "qs@muster.example",
            "Muster GmbH",
            "1001 · Muster GmbH",
            Scope.customer(muster_gmbh.pk),
            "customer",
            "en",
        ),
    ]


def test_resolve_system_address_gets_no_report_by_default(db):
    system = SystemAddressFactory(
        name="Kalibrierlabor", email="labor@calserver.example", language="en"
    )

    (recipient,) = resolve_selection([f"system:{system.pk}"])

    assert (
        recipient.email,
        recipient.name,
        recipient.owner,
        recipient.address_type,
        recipient.scope,
        recipient.language,
    ) == (
        "labor@calserver.example",
        "Kalibrierlabor",
        "Kalibrierlabor",
        "system",
        Scope.none(),
        "en",
    )


def test_resolve_typed_address_gets_no_report_by_default_without_language(db):
    (recipient,) = resolve_selection(["Erika Muster <erika@example.com>"])

    assert recipient == Recipient(
        email="erika@example.com",
        name="Erika Muster",
        language=None,
        address_type=AddressType.ADDRESS,
        owner="",
        scope=Scope.none(),
        source="address:Erika Muster <erika@example.com>",
    )
    assert recipient.formatted == "Erika Muster <erika@example.com>"


def test_resolve_distribution_list_members_keep_their_own_scope(max_muster, muster_gmbh):
    distribution_list = DistributionListFactory(
        name="Qualitätssicherung",
        users=[max_muster],
        customers=[muster_gmbh],
        addresses=[("leitung@calserver.example", "QS-Leitung")],
    )

    recipients = resolve_selection([f"list:{distribution_list.pk}"]).recipients

    assert [(r.email, r.scope, r.address_type, r.owner, r.via) for r in recipients] == [
        (
            "max@calserver.example",
            Scope.user(max_muster.pk),
            "distribution",
            "Max Muster",
            "Qualitätssicherung",
        ),
        (
            "einkauf@muster.example",
            Scope.customer(muster_gmbh.pk),
            "distribution",
            "1001 · Muster GmbH",
            "Qualitätssicherung",
        ),
        (
            "qs@muster.example",
            Scope.customer(muster_gmbh.pk),
            "distribution",
            "1001 · Muster GmbH",
            "Qualitätssicherung",
        ),
        (
            "leitung@calserver.example",
            Scope.none(),
            "distribution",
            "Qualitätssicherung",
            "Qualitätssicherung",
        ),
    ]
    assert recipients[0].language == "en"
    assert recipients[3].name == "QS-Leitung"


def test_resolve_deduplicates_by_address_first_wins_order_kept(max_muster, muster_gmbh):
    system = SystemAddressFactory(email="QS@Muster.example")
    distribution_list = DistributionListFactory(users=[max_muster])

    resolution = resolve_selection(
        [
            f"customer:{muster_gmbh.pk}",
            "MAX@calserver.example",
            f"list:{distribution_list.pk}",
            f"system:{system.pk}",
            f"user:{max_muster.pk}",
            "neu@example.com",
        ]
    )

    assert [(r.email, r.address_type) for r in resolution] == [
        ("einkauf@muster.example", "customer"),
        ("qs@muster.example", "customer"),
        ("MAX@calserver.example", "address"),
        ("neu@example.com", "address"),
    ]


def test_resolve_repeated_tokens_count_once(max_muster):
    resolution = resolve_selection([f"user:{max_muster.pk}", f"user:{max_muster.pk}"])

    assert resolution.emails == ["max@calserver.example"]


def test_resolve_reports_what_yields_no_address(db):
    inactive = UserFactory(username="weg", is_active=False)
    no_mail = UserFactory(username="stumm", email="")
    no_contacts = CustomerFactory(number="1002", name="Ohne Adresse KG", emails=[])
    empty = DistributionListFactory(name="Leer")

    resolution = resolve_selection(
        [
            f"user:{inactive.pk}",
            f"user:{no_mail.pk}",
            f"customer:{no_contacts.pk}",
            f"list:{empty.pk}",
            "system:999",
        ]
    )

    assert resolution.recipients == []
    # Each reason in words and as its msgid (the run history shows it in its reader's
    # language).
    assert resolution.skipped == [
        Skipped(source, label, reason, reason)
        for source, label, reason in [
            (f"user:{inactive.pk}", "weg", "the user is deactivated"),
            (f"user:{no_mail.pk}", "stumm", "the user has no e-mail address"),
            (
                f"customer:{no_contacts.pk}",
                "1002 · Ohne Adresse KG",
                "the customer has no contact e-mail address",
            ),
            (f"list:{empty.pk}", "Leer", "the distribution list has no members"),
            ("system:999", "system:999", "it no longer exists"),
        ]
    ]


def test_resolve_recipients_by_kind_accepts_instances_and_ids(max_muster, muster_gmbh):
    system = SystemAddressFactory(email="labor@calserver.example")

    resolution = resolve_recipients(
        addresses=["extern@example.com"],
        system_addresses=[system.pk],
        customers=[muster_gmbh],
        users=[max_muster.pk],
    )

    assert resolution.emails == [
        "max@calserver.example",
        "einkauf@muster.example",
        "qs@muster.example",
        "labor@calserver.example",
        "extern@example.com",
    ]


def test_resolve_recipients_refuses_a_reference_as_typed_address(db):
    with pytest.raises(ValidationError) as caught:
        resolve_recipients(addresses=["user:1"])

    assert caught.value.messages == ["“user:1” is not a valid e-mail address."]


def test_resolve_query_count_does_not_grow_with_selection(db):
    def make_list(n):
        users = [UserFactory() for _ in range(2)]
        customers = [
            CustomerFactory(emails=[f"a{n}{i}@k.example", f"b{n}{i}@k.example"]) for i in range(2)
        ]
        return DistributionListFactory(
            users=users, customers=customers, addresses=[f"x{n}@k.example"]
        )

    def selection(lists):
        return [f"list:{item.pk}" for item in lists] + [
            f"user:{UserFactory().pk}",
            f"customer:{CustomerFactory().pk}",
        ]

    one = selection([make_list(0)])
    three = selection([make_list(1), make_list(2), make_list(3)])
    with CaptureQueriesContext(connection) as small:
        resolve_selection(one)
    with CaptureQueriesContext(connection) as large:
        result = resolve_selection(three)

    assert len(result) == 3 * 7 + 2
    assert len(large.captured_queries) == len(small.captured_queries)


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user:12", SelectionItem(TokenKind.USER, pk=12)),
        (" Customer:5 ", SelectionItem(TokenKind.CUSTOMER, pk=5)),
        ("list:3", SelectionItem(TokenKind.LIST, pk=3)),
        ("system:2", SelectionItem(TokenKind.SYSTEM, pk=2)),
        ("a@example.com", SelectionItem(TokenKind.ADDRESS, email="a@example.com")),
        ("address:a@example.com", SelectionItem(TokenKind.ADDRESS, email="a@example.com")),
        (
            "Max Muster <max@example.com>",
            SelectionItem(TokenKind.ADDRESS, email="max@example.com", name="Max Muster"),
        ),
        (
            '"Muster, Max" <max@example.com>',
            SelectionItem(TokenKind.ADDRESS, email="max@example.com", name="Muster, Max"),
        ),
        (
            "address:Max <max@example.com>",
            SelectionItem(TokenKind.ADDRESS, email="max@example.com", name="Max"),
        ),
    ],
)
def test_parse_token_accepts(text, expected):
    assert parse_token(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "An empty recipient was given."),
        ("user:", "“user:”: after “user:” a number is expected."),
        ("user:abc", "“user:abc”: after “user:” a number is expected."),
        ("customer:0", "“customer:0”: after “customer:” a number is expected."),
        ("list:-3", "“list:-3”: after “list:” a number is expected."),
        ("system:²", "“system:²”: after “system:” a number is expected."),
        (
            "group:3",
            "“group:3” is not a known kind of recipient. Use user:, customer:, list:, system: or an e-mail address.",
        ),
        ("kalibrierlabor", "“kalibrierlabor” is not a valid e-mail address."),
        ("a@", "“a@” is not a valid e-mail address."),
        ("Max <kein-at>", "“Max <kein-at>” is not a valid e-mail address."),
        ("address:nope", "“address:nope” is not a valid e-mail address."),
        ("Max\r\nBcc: evil@example.com <max@example.com>", "is not a valid e-mail address."),
    ],
)
def test_parse_token_refuses_with_clear_message(text, message):
    with pytest.raises(ValidationError) as caught:
        parse_token(text)

    assert message in caught.value.messages[0]


def test_parse_tokens_reports_every_bad_token_and_drops_repeats():
    assert parse_tokens(["user:1", "USER:1", "a@example.com", "A@example.com"]) == [
        SelectionItem(TokenKind.USER, pk=1),
        SelectionItem(TokenKind.ADDRESS, email="a@example.com"),
    ]
    with pytest.raises(ValidationError) as caught:
        parse_tokens(["user:1", "user:x", "kaputt", "list:2"])
    assert caught.value.messages == [
        "“user:x”: after “user:” a number is expected.",
        "“kaputt” is not a valid e-mail address.",
    ]


def test_selection_item_token_round_trips():
    items = [
        SelectionItem(TokenKind.USER, pk=12),
        SelectionItem(TokenKind.ADDRESS, email="a@example.com"),
        SelectionItem(TokenKind.ADDRESS, email="m@example.com", name="Muster, Max"),
    ]

    assert [item.token for item in items] == [
        "user:12",
        "address:a@example.com",
        'address:"Muster, Max" <m@example.com>',
    ]
    assert [parse_token(item.token) for item in items] == items


def test_split_recipient_text_respects_quotes_and_brackets():
    text = 'user:1, customer:2;\n"Muster, Max" <max@example.com>\r\n<a,b@example.com> ; ,'

    assert split_recipient_text(text) == [
        "user:1",
        "customer:2",
        '"Muster, Max" <max@example.com>',
        "<a,b@example.com>",
    ]


def test_scope_text_round_trips_and_rejects_nonsense():
    scopes = [Scope.customer(5), Scope.user(12), Scope.all()]

    assert [str(scope) for scope in scopes] == ["customer:5", "user:12", "all"]
    assert [Scope.parse(str(scope)) for scope in scopes] == scopes
    for bad in ("customer", "all:3", "team:1", "user:x"):
        with pytest.raises(ValueError, match="Not a scope"):
            Scope.parse(bad)


def test_address_types_match_the_outbox():
    from mailbox.models import AddressType as OutboxAddressType

    assert {str(value) for value in AddressType} == set(OutboxAddressType.values)


# --- check, describe ------------------------------------------------------------------------


def test_check_selection_refuses_missing_inactive_and_invisible(db, viewer, team):
    hidden = DistributionListFactory(owner_group=team)
    visible = DistributionListFactory()
    inactive = UserFactory(is_active=False)

    with pytest.raises(ValidationError) as caught:
        check_selection(
            [
                f"list:{visible.pk}",
                f"list:{hidden.pk}",
                f"user:{inactive.pk}",
                "customer:999",
                "a@example.com",
            ],
            user=viewer,
        )

    assert caught.value.messages == [
        f"The recipient list:{hidden.pk} does not exist or is not available to you.",
        f"The recipient user:{inactive.pk} does not exist or is not available to you.",
        "The recipient customer:999 does not exist or is not available to you.",
    ]
    assert check_selection([f"list:{visible.pk}", "a@example.com"], user=viewer) == [
        SelectionItem(TokenKind.LIST, pk=visible.pk),
        SelectionItem(TokenKind.ADDRESS, email="a@example.com"),
    ]


def test_describe_selection_labels_tokens_in_order(admin, max_muster, muster_gmbh):
    distribution_list = DistributionListFactory(name="Qualitätssicherung", description="QS-Team")

    choices = describe_selection(
        [
            f"list:{distribution_list.pk}",
            "x@example.com",
            f"customer:{muster_gmbh.pk}",
            f"user:{max_muster.pk}",
            "system:77",
        ],
        user=admin,
    )

    assert [(c.token, c.label, c.detail) for c in choices] == [
        (f"list:{distribution_list.pk}", "Qualitätssicherung", "QS-Team"),
        ("address:x@example.com", "x@example.com", ""),
        (
            f"customer:{muster_gmbh.pk}",
            "1001 · Muster GmbH",
            "einkauf@muster.example, qs@muster.example",
        ),
        (f"user:{max_muster.pk}", "Max Muster", "max@calserver.example"),
        ("system:77", "system:77 (unknown selection)", ""),
    ]


def test_describe_selection_names_only_what_the_user_may_see(teammate, muster_gmbh):
    """A power user sees the lists of their team and those without one, active users,
    customers and system addresses; another team's list looks like one that does not exist."""
    from django.contrib.auth.models import Group

    other_team = Group.objects.create(name="Labor Süd")
    hidden = DistributionListFactory(
        name="Geheim", description="Süd intern", owner_group=other_team
    )
    own = DistributionListFactory(
        name="Nord", description="Nord intern", owner_group=teammate.groups.get(name="Labor Nord")
    )
    public = DistributionListFactory(name="Alle", description="")
    active = UserFactory(first_name="Eva", last_name="Aktiv", email="eva@calserver.example")
    inactive = UserFactory(first_name="Ina", last_name="Alt", is_active=False)
    system = SystemAddressFactory(name="Labor", email="labor@calserver.example")

    choices = describe_selection(
        [
            f"list:{hidden.pk}",
            f"list:{own.pk}",
            f"list:{public.pk}",
            f"user:{active.pk}",
            f"user:{inactive.pk}",
            f"customer:{muster_gmbh.pk}",
            f"system:{system.pk}",
            "list:999999",
        ],
        user=teammate,
    )

    assert [(c.token, c.label, c.detail) for c in choices] == [
        (f"list:{hidden.pk}", f"list:{hidden.pk} (unknown selection)", ""),
        (f"list:{own.pk}", "Nord", "Nord intern"),
        (f"list:{public.pk}", "Alle", ""),
        (f"user:{active.pk}", "Eva Aktiv", "eva@calserver.example"),
        (f"user:{inactive.pk}", f"user:{inactive.pk} (unknown selection)", ""),
        (
            f"customer:{muster_gmbh.pk}",
            "1001 · Muster GmbH",
            "einkauf@muster.example, qs@muster.example",
        ),
        (f"system:{system.pk}", "Labor", "labor@calserver.example"),
        ("list:999999", "list:999999 (unknown selection)", ""),
    ]


def test_describe_selection_names_nothing_for_a_user_without_role(
    outsider, max_muster, muster_gmbh
):
    distribution_list = DistributionListFactory(name="Alle")
    system = SystemAddressFactory(name="Labor")
    tokens = [
        f"list:{distribution_list.pk}",
        f"user:{max_muster.pk}",
        f"customer:{muster_gmbh.pk}",
        f"system:{system.pk}",
    ]

    choices = describe_selection(tokens, user=outsider)

    assert [c.label for c in choices] == [f"{token} (unknown selection)" for token in tokens]
    with pytest.raises(ValidationError) as caught:
        check_selection(tokens, user=outsider)
    assert len(caught.value.messages) == 4


def test_unavailable_references_give_positions_of_missing_and_hidden(teammate):
    from django.contrib.auth.models import Group

    hidden = DistributionListFactory(owner_group=Group.objects.create(name="Labor Süd"))
    visible = DistributionListFactory()

    unavailable = unavailable_references(
        [
            f"list:{visible.pk}",
            "kein-at-zeichen",
            f"list:{hidden.pk}",
            "a@example.com",
            "customer:999999",
        ],
        user=teammate,
    )

    assert unavailable == [
        (3, SelectionItem(TokenKind.LIST, pk=hidden.pk)),
        (5, SelectionItem(TokenKind.CUSTOMER, pk=999999)),
    ]


# --- search ---------------------------------------------------------------------------------


def tokens(choices):
    return [choice.token for choice in choices]


def test_search_finds_users_by_every_word(admin, max_muster):
    UserFactory(username="erika", first_name="Erika", last_name="Muster")

    assert tokens(search_recipients("max muster", user=admin)) == [f"user:{max_muster.pk}"]


def test_search_finds_customers_by_number_name_and_contact_address(admin, muster_gmbh):
    other = CustomerFactory(number="2002", name="Andere AG", emails=["info@andere.example"])

    by_number = search_recipients("1001", user=admin)
    by_name = search_recipients("muster gmbh", user=admin)
    by_address = search_recipients("qs@muster", user=admin)

    assert (
        tokens(by_number) == tokens(by_name) == tokens(by_address) == [f"customer:{muster_gmbh.pk}"]
    )
    assert by_number[0].as_dict() == {
        "token": f"customer:{muster_gmbh.pk}",
        "label": "1001 · Muster GmbH",
        "kind": "customer",
        "kind_label": "Customer",
        "detail": "einkauf@muster.example, qs@muster.example",
    }
    assert other.pk not in [c.token for c in by_number]


def test_search_shows_only_visible_distribution_lists_and_system_addresses(viewer, team):
    visible = DistributionListFactory(name="Labor alle")
    DistributionListFactory(name="Labor Team", owner_group=team)
    system = SystemAddressFactory(name="Kalibrierlabor")

    assert tokens(search_recipients("labor", user=viewer)) == [
        f"list:{visible.pk}",
        f"system:{system.pk}",
    ]


def test_search_offers_a_typed_address(admin):
    choices = search_recipients("Neu <neu@example.com>", user=admin)

    assert [(c.token, c.kind, c.label, c.detail) for c in choices] == [
        ("address:Neu <neu@example.com>", TokenKind.ADDRESS, "neu@example.com", "Neu")
    ]


def test_search_shares_the_limit_among_kinds(admin):
    users = [UserFactory(username=f"labor{n}", last_name=f"Labor {n}") for n in range(5)]
    customers = [CustomerFactory(number=str(3000 + n), name=f"Labor {n} GmbH") for n in range(5)]
    system = SystemAddressFactory(name="Labor")

    choices = search_recipients("labor", user=admin, limit=5)

    assert tokens(choices) == [
        f"user:{users[0].pk}",
        f"user:{users[1].pk}",
        f"customer:{customers[0].pk}",
        f"customer:{customers[1].pk}",
        f"system:{system.pk}",
    ]


def test_search_empty_query_finds_nothing(admin, max_muster):
    assert search_recipients("   ", user=admin) == []
