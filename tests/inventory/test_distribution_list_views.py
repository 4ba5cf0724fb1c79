import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.models import DistributionList
from tests.csv_export import read_csv
from tests.factories import CustomerFactory, DistributionListFactory, UserFactory
from tests.inventory.conftest import english, page_text, rows

OBJECT_URLS = ["detail", "update", "duplicate", "delete"]


def url_for(name, pk=None):
    if name in ("list", "create", "bulk"):
        return reverse(f"inventory:distributionlist_{name}")
    return reverse(f"inventory:distributionlist_{name}", args=[pk])


def form_data(**overrides):
    data = {
        "name": "Qualitätssicherung",
        "description": "QS-Team",
        "owner_group": "",
        "users": [],
        "customers": [],
        "addresses": "qs@calserver.example\nQS-Leitung <leitung@calserver.example>",
    }
    data.update(overrides)
    return data


# --- permissions --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_list_views_anonymous_redirected_to_login(client, name):
    distribution_list = DistributionListFactory()

    response = client.get(url_for(name, distribution_list.pk))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_list_views_outsider_is_refused(client_for, outsider, name):
    distribution_list = DistributionListFactory(name="Geheimverteiler")

    response = client_for(outsider).get(url_for(name, distribution_list.pk))

    assert response.status_code == 403
    assert "Geheimverteiler" not in page_text(response)


@pytest.mark.django_db
def test_list_views_viewer_reads_only(client_for, viewer):
    distribution_list = DistributionListFactory(name="Sichtbar")
    client = client_for(viewer)

    listing = client.get(url_for("list"))
    detail = client.get(url_for("detail", distribution_list.pk))
    forbidden = {
        name: client.get(url_for(name, distribution_list.pk)).status_code
        for name in ("create", "update", "duplicate", "delete")
    }
    post = client.post(url_for("update", distribution_list.pk), form_data(name="Verändert"))

    assert "Sichtbar" in page_text(listing) and "Sichtbar" in page_text(detail)
    assert forbidden == {"create": 403, "update": 403, "duplicate": 403, "delete": 403}
    assert post.status_code == 403
    assert list(DistributionList.objects.values_list("name", flat=True)) == ["Sichtbar"]
    assert url_for("update", distribution_list.pk) not in page_text(listing)


@pytest.mark.django_db
def test_list_views_power_user_edits_but_cannot_delete(client_for, power_user):
    distribution_list = DistributionListFactory(name="Bearbeitbar")
    client = client_for(power_user)

    listing = client.get(url_for("list"))
    edit = client.post(url_for("update", distribution_list.pk), form_data(name="Bearbeitet"))
    delete = client.post(url_for("delete", distribution_list.pk))
    bulk = client.post(
        url_for("bulk"), {"action": "delete", "selection": [distribution_list.pk], "confirm": "1"}
    )

    assert url_for("update", distribution_list.pk) in page_text(listing)
    assert url_for("delete", distribution_list.pk) not in page_text(listing)
    assert edit.status_code == 302
    assert (delete.status_code, bulk.status_code) == (403, 403)
    assert list(DistributionList.objects.values_list("name", flat=True)) == ["Bearbeitet"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_list_views_administrator_opens_every_page(client_for, admin, name):
    distribution_list = DistributionListFactory(name="Erreichbar")

    response = client_for(admin).get(url_for(name, distribution_list.pk))

    assert response.status_code == 200
    assert "Erreichbar" in page_text(response) or name == "create"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["detail", "update", "duplicate"])
def test_list_of_another_team_is_404(client_for, power_user, team, name):
    distribution_list = DistributionListFactory(name="Fremd", owner_group=team)

    response = client_for(power_user).get(url_for(name, distribution_list.pk))

    assert response.status_code == 404
    assert "Fremd" not in page_text(response)


@pytest.mark.django_db
def test_list_of_own_team_visible_to_teammate_only(client_for, teammate, power_user, team):
    DistributionListFactory(name="Teamliste", owner_group=team)
    DistributionListFactory(name="Offen")

    mine = client_for(teammate).get(url_for("list"))
    theirs = client_for(power_user).get(url_for("list"))

    assert [obj.name for obj in rows(mine)] == ["Offen", "Teamliste"]
    assert [obj.name for obj in rows(theirs)] == ["Offen"]


# --- create / edit ------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_with_members(client_for, admin, team):
    user = UserFactory(first_name="Max", last_name="Muster")
    customer = CustomerFactory()

    response = client_for(admin).post(
        url_for("create"), form_data(owner_group=team.pk, users=[user.pk], customers=[customer.pk])
    )

    distribution_list = DistributionList.objects.get()
    assert response["Location"] == url_for("detail", distribution_list.pk)
    assert (
        distribution_list.name,
        distribution_list.description,
        distribution_list.owner_group,
    ) == (
        "Qualitätssicherung",
        "QS-Team",
        team,
    )
    assert list(distribution_list.users.all()) == [user]
    assert list(distribution_list.customers.all()) == [customer]
    assert list(distribution_list.addresses.values_list("email", "name")) == [
        ("qs@calserver.example", ""),
        ("leitung@calserver.example", "QS-Leitung"),
    ]


@pytest.mark.django_db
def test_create_bad_addresses_show_each_problem(client_for, admin):
    response = english(client_for(admin)).post(
        url_for("create"), form_data(addresses="ok@calserver.example\nkaputt@\nMax <kein-at>")
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "addresses": [
            "“kaputt@” is not a valid e-mail address.",
            "“Max <kein-at>” is not a valid e-mail address.",
        ]
    }
    assert DistributionList.objects.count() == 0
    assert "ok@calserver.example" in page_text(response)


@pytest.mark.django_db
def test_create_duplicate_name_refused_on_the_name_field(client_for, admin):
    DistributionListFactory(name="Qualitaetssicherung")

    response = english(client_for(admin)).post(
        url_for("create"), form_data(name="QUALITAETSSICHERUNG")
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "name": ["A distribution list with this name already exists."]
    }
    assert DistributionList.objects.count() == 1


@pytest.mark.django_db
def test_power_user_cannot_give_a_list_to_a_foreign_team(client_for, power_user, team):
    response = english(client_for(power_user)).post(
        url_for("create"), form_data(owner_group=team.pk)
    )

    assert response.status_code == 200
    assert "owner_group" in response.context["form"].errors
    assert DistributionList.objects.count() == 0


@pytest.mark.django_db
def test_edit_form_shows_current_members_and_saves_changes(client_for, admin):
    user = UserFactory()
    distribution_list = DistributionListFactory(
        name="Alt", users=[user], addresses=[("a@calserver.example", "A")]
    )
    client = client_for(admin)

    page = client.get(url_for("update", distribution_list.pk))
    response = client.post(
        url_for("update", distribution_list.pk),
        form_data(name="Neu", addresses="b@calserver.example"),
    )

    assert page.context["form"].initial["addresses"] == "A <a@calserver.example>"
    assert page.context["form"].initial["users"] == [user.pk]
    assert response.status_code == 302
    distribution_list.refresh_from_db()
    assert distribution_list.name == "Neu"
    assert list(distribution_list.users.all()) == []
    assert list(distribution_list.addresses.values_list("email", flat=True)) == [
        "b@calserver.example"
    ]


@pytest.mark.django_db
def test_edit_to_a_taken_name_keeps_the_old_one(client_for, admin):
    DistributionListFactory(name="Belegt")
    distribution_list = DistributionListFactory(name="Meins")

    response = english(client_for(admin)).post(
        url_for("update", distribution_list.pk), form_data(name="belegt")
    )

    assert response.context["form"].errors == {
        "name": ["A distribution list with this name already exists."]
    }
    assert "Edit distribution list Meins" in page_text(response)
    distribution_list.refresh_from_db()
    assert distribution_list.name == "Meins"


@pytest.mark.django_db
def test_detail_shows_members_and_who_gets_no_mail(client_for, admin):
    silent = CustomerFactory(number="1002", name="Ohne Adresse KG", emails=[])
    customer = CustomerFactory(
        number="1001", name="Muster GmbH", emails=["a@muster.example", "b@muster.example"]
    )
    distribution_list = DistributionListFactory(
        customers=[customer, silent], addresses=["x@calserver.example"]
    )

    response = english(client_for(admin)).get(url_for("detail", distribution_list.pk))

    text = page_text(response)
    assert "Mails to this list go to 3 addresses." in text
    assert "1002 · Ohne Adresse KG: the customer has no contact e-mail address" in text
    assert "a@muster.example, b@muster.example" in text


# --- duplicate, delete ----------------------------------------------------------------------


@pytest.mark.django_db
def test_duplicate_proposes_a_name_and_copies(client_for, admin):
    user = UserFactory()
    original = DistributionListFactory(name="Labor", users=[user])
    client = english(client_for(admin))

    page = client.get(url_for("duplicate", original.pk))
    taken = client.post(url_for("duplicate", original.pk), {"name": "labor"})
    done = client.post(url_for("duplicate", original.pk), {"name": "Labor 2"})

    copy = DistributionList.objects.get(name="Labor 2")
    assert page.context["form"].initial["name"] == "Labor (copy)"
    assert taken.context["form"].errors == {"name": ["This name is already taken."]}
    assert done["Location"] == url_for("update", copy.pk)
    assert list(copy.users.all()) == [user]


@pytest.mark.django_db
def test_delete_asks_then_deletes(client_for, admin):
    distribution_list = DistributionListFactory(name="Weg damit")
    client = english(client_for(admin))

    question = client.get(url_for("delete", distribution_list.pk))
    still_there = DistributionList.objects.count()
    done = client.post(url_for("delete", distribution_list.pk), follow=True)

    assert "Delete the distribution list Weg damit? This cannot be undone." in page_text(question)
    assert still_there == 1
    assert DistributionList.objects.count() == 0
    assert "Weg damit deleted." in page_text(done)


@pytest.mark.django_db
def test_bulk_delete_confirms_then_deletes_only_visible(client_for, admin, power_user, team):
    a = DistributionListFactory(name="A")
    b = DistributionListFactory(name="B")
    client = english(client_for(admin))

    confirm = client.post(url_for("bulk"), {"action": "delete", "selection": [a.pk, b.pk]})
    count_after_confirm_page = DistributionList.objects.count()
    done = client.post(
        url_for("bulk"),
        {"action": "delete", "selection": [a.pk, b.pk], "confirm": "1"},
        follow=True,
    )

    assert "This will apply to 2 rows:" in page_text(confirm)
    assert count_after_confirm_page == 2
    assert DistributionList.objects.count() == 0
    assert "2 distribution lists deleted." in page_text(done)


# --- list: filters, export, queries -----------------------------------------------------------


@pytest.fixture
def three_lists(db, team):
    max_muster = UserFactory(username="mmuster", first_name="Max", last_name="Muster")
    customers = [CustomerFactory(number=str(1000 + n), name=f"Kunde {n}") for n in range(3)]
    return [
        DistributionListFactory(name="Alpha", description="erste Liste", users=[max_muster]),
        DistributionListFactory(
            name="Beta",
            description="zweite",
            customers=customers,
            addresses=["beta@calserver.example"],
            owner_group=team,
        ),
        DistributionListFactory(
            name="Gamma", description="dritte Liste", addresses=["a@x.example", "b@x.example"]
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "amm"}, ["Gamma"]),
        ({"description": "liste"}, ["Alpha", "Gamma"]),
        ({"user_count_min": "1"}, ["Alpha"]),
        ({"customer_count_min": "2", "customer_count_max": "3"}, ["Beta"]),
        ({"address_count_min": "2"}, ["Gamma"]),
        ({"owner_group": "null"}, ["Alpha", "Gamma"]),
        ({"member": "muster"}, ["Alpha"]),
        ({"member": "Kunde 2"}, ["Beta"]),
        ({"member": "b@x.example"}, ["Gamma"]),
        ({"q": "zweite"}, ["Beta"]),
    ],
)
def test_list_each_filter_narrows_rows(client_for, admin, three_lists, query, expected):
    response = client_for(admin).get(url_for("list"), query)

    assert [obj.name for obj in rows(response)] == expected


@pytest.mark.django_db
def test_list_owner_group_filter(client_for, admin, team, three_lists):
    response = client_for(admin).get(url_for("list"), {"owner_group": team.pk})

    assert [obj.name for obj in rows(response)] == ["Beta"]


@pytest.mark.django_db
def test_list_owner_group_filter_offers_only_own_teams(client_for, power_user, team):
    response = client_for(power_user).get(url_for("list"), {"owner_group": team.pk})

    assert "owner_group" in response.context["filter"].form.errors
    assert rows(response) == []


@pytest.mark.django_db
def test_list_sorting_by_counts(client_for, admin, three_lists):
    response = client_for(admin).get(url_for("list"), {"sort": "-address_count"})

    assert [obj.name for obj in rows(response)] == ["Gamma", "Beta", "Alpha"]


@pytest.mark.django_db
def test_list_export_csv_has_the_visible_columns(client_for, admin, three_lists, team):
    response = english(client_for(admin)).get(url_for("list"), {"_export": "csv", "name": "beta"})
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()

    assert read_csv(content) == [
        ["Name", "Description", "Users", "Customers", "Further addresses", "Owner group"],
        ["Beta", "zweite", "0", "3", "1", "Labor Nord"],
    ]


@pytest.mark.django_db
def test_list_export_xlsx_readable(client_for, admin, three_lists):
    response = english(client_for(admin)).get(url_for("list"), {"_export": "xlsx"})
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    response.close()

    assert list(workbook.active.iter_rows(values_only=True)) == [
        ("Name", "Description", "Users", "Customers", "Further addresses", "Owner group"),
        ("Alpha", "erste Liste", 1, 0, 0, None),
        ("Beta", "zweite", 0, 3, 1, "Labor Nord"),
        ("Gamma", "dritte Liste", 0, 0, 2, None),
    ]


@pytest.mark.django_db
def test_list_export_neutralises_formulas(client_for, admin):
    DistributionListFactory(name="=HYPERLINK(1)", description="@evil")

    response = client_for(admin).get(url_for("list"), {"_export": "csv"})
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()

    assert read_csv(content)[1][:2] == ["'=HYPERLINK(1)", "'@evil"]


@pytest.mark.django_db
def test_list_query_count_does_not_grow_with_rows(
    client_for, admin, team, django_assert_num_queries
):
    client = client_for(admin)
    DistributionListFactory(owner_group=team, users=[UserFactory()], addresses=["a@x.example"])
    client.get(url_for("list"))
    with CaptureQueriesContext(connection) as one_row:
        client.get(url_for("list"))
    for _ in range(2):
        DistributionListFactory(
            owner_group=team, users=[UserFactory()], customers=[CustomerFactory()]
        )

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(url_for("list"))

    assert len(rows(response)) == 3


@pytest.mark.django_db
def test_create_form_help_shows_the_address_example(client_for, admin):
    response = english(client_for(admin)).get(url_for("create"))

    assert "optionally with a name: Max Muster &lt;max@example.com&gt;" in page_text(response)
