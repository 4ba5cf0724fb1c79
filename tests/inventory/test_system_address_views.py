import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.models import SystemAddress
from tests.csv_export import read_csv
from tests.factories import SystemAddressFactory
from tests.inventory.conftest import english, page_text, rows

OBJECT_URLS = ["update", "duplicate", "delete"]


def url_for(name, pk=None):
    if name in ("list", "create", "bulk"):
        return reverse(f"inventory:systemaddress_{name}")
    return reverse(f"inventory:systemaddress_{name}", args=[pk])


def form_data(**overrides):
    data = {
        "name": "Kalibrierlabor",
        "email": "kalibrierlabor@calserver.example",
        "language": "de",
        "description": "Absender der Erinnerungen",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_system_address_views_anonymous_redirected(client, name):
    system_address = SystemAddressFactory()

    response = client.get(url_for(name, system_address.pk))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_system_address_views_outsider_is_refused(client_for, outsider, name):
    system_address = SystemAddressFactory(name="Geheimlabor")

    response = client_for(outsider).get(url_for(name, system_address.pk))

    assert response.status_code == 403
    assert "Geheimlabor" not in page_text(response)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_system_address_views_read_only_for_viewer_and_power_user(client_for, request, role):
    system_address = SystemAddressFactory(name="Sichtbar")
    client = client_for(request.getfixturevalue(role))

    listing = client.get(url_for("list"))
    forbidden = {
        name: client.get(url_for(name, system_address.pk)).status_code
        for name in ["create", *OBJECT_URLS]
    }
    post = client.post(url_for("create"), form_data())

    assert "Sichtbar" in page_text(listing)
    assert forbidden == {"create": 403, "update": 403, "duplicate": 403, "delete": 403}
    assert post.status_code == 403
    assert SystemAddress.objects.count() == 1


@pytest.mark.django_db
def test_system_address_create_and_edit(client_for, admin):
    client = client_for(admin)

    created = client.post(url_for("create"), form_data())
    system_address = SystemAddress.objects.get()
    edited = client.post(
        url_for("update", system_address.pk),
        form_data(email="labor@calserver.example", language="en"),
    )

    system_address.refresh_from_db()
    assert (created["Location"], edited["Location"]) == (url_for("list"), url_for("list"))
    assert (system_address.name, system_address.email, system_address.language) == (
        "Kalibrierlabor",
        "labor@calserver.example",
        "en",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"email": "kein-at"}, {"email": ["Enter a valid email address."]}),
        ({"name": ""}, {"name": ["This field is required."]}),
        (
            {"language": "fr"},
            {"language": ["Select a valid choice. fr is not one of the available choices."]},
        ),
        ({"name": "SERVICE"}, {"name": ["A system address with this name already exists."]}),
    ],
)
def test_system_address_create_invalid_input(client_for, admin, overrides, errors):
    SystemAddressFactory(name="Service")

    response = english(client_for(admin)).post(url_for("create"), form_data(**overrides))

    assert response.status_code == 200
    assert response.context["form"].errors == errors
    assert SystemAddress.objects.count() == 1


@pytest.mark.django_db
def test_system_address_edit_to_taken_name_keeps_old(client_for, admin):
    SystemAddressFactory(name="Service")
    system_address = SystemAddressFactory(name="Labor")

    response = english(client_for(admin)).post(
        url_for("update", system_address.pk), form_data(name="service")
    )

    assert response.context["form"].errors == {
        "name": ["A system address with this name already exists."]
    }
    system_address.refresh_from_db()
    assert system_address.name == "Labor"


@pytest.mark.django_db
def test_system_address_duplicate_and_delete(client_for, admin):
    original = SystemAddressFactory(name="Labor", email="labor@calserver.example")
    client = english(client_for(admin))

    proposal = client.get(url_for("duplicate", original.pk)).context["form"].initial["name"]
    client.post(url_for("duplicate", original.pk), {"name": "Labor Süd"})
    question = client.get(url_for("delete", original.pk))
    done = client.post(url_for("delete", original.pk), follow=True)

    assert proposal == "Labor (copy)"
    assert "Delete the system address Labor? This cannot be undone." in page_text(question)
    assert "Labor deleted." in page_text(done)
    assert list(SystemAddress.objects.values_list("name", "email")) == [
        ("Labor Süd", "labor@calserver.example")
    ]


@pytest.mark.django_db
def test_system_address_bulk_delete(client_for, admin):
    a, b, keep = SystemAddressFactory(), SystemAddressFactory(), SystemAddressFactory(name="Bleibt")
    client = english(client_for(admin))

    confirm = client.post(url_for("bulk"), {"action": "delete", "selection": [a.pk, b.pk]})
    done = client.post(
        url_for("bulk"),
        {"action": "delete", "selection": [a.pk, b.pk], "confirm": "1"},
        follow=True,
    )

    assert "This will apply to 2 rows:" in page_text(confirm)
    assert "2 system addresses deleted." in page_text(done)
    assert list(SystemAddress.objects.all()) == [keep]


@pytest.fixture
def three_addresses(db):
    return [
        SystemAddressFactory(
            name="Kalibrierlabor", email="labor@calserver.example", description="Erinnerungen"
        ),
        SystemAddressFactory(name="Service", email="service@calserver.example", language="en"),
        SystemAddressFactory(
            name="Versand", email="versand@lager.example", description="Paketdienst"
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "servi"}, ["Service"]),
        ({"email": "lager"}, ["Versand"]),
        ({"language": "en"}, ["Service"]),
        ({"description": "paket"}, ["Versand"]),
        ({"q": "erinnerung"}, ["Kalibrierlabor"]),
    ],
)
def test_system_address_list_each_filter(client_for, admin, three_addresses, query, expected):
    response = client_for(admin).get(url_for("list"), query)

    assert [obj.name for obj in rows(response)] == expected


@pytest.mark.django_db
def test_system_address_export_csv(client_for, admin, three_addresses):
    response = english(client_for(admin)).get(url_for("list"), {"_export": "csv", "language": "en"})
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()

    assert read_csv(content) == [
        ["Name", "E-mail address", "Language", "Description"],
        ["Service", "service@calserver.example", "English", ""],
    ]


@pytest.mark.django_db
def test_system_address_list_query_count(client_for, admin, django_assert_num_queries):
    client = client_for(admin)
    SystemAddressFactory()
    client.get(url_for("list"))
    with CaptureQueriesContext(connection) as one_row:
        client.get(url_for("list"))
    SystemAddressFactory.create_batch(2)

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(url_for("list"))

    assert len(rows(response)) == 3
