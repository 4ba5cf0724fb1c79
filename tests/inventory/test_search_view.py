import pytest
from django.urls import reverse

from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    SystemAddressFactory,
    UserFactory,
)
from tests.inventory.conftest import english

URL = reverse("inventory:recipient_search")


@pytest.mark.django_db
def test_recipient_search_anonymous_redirected_to_login(client):
    response = client.get(URL, {"q": "muster"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
def test_recipient_search_outsider_gets_403_without_results(client_for, outsider):
    CustomerFactory(name="Muster GmbH")

    response = english(client_for(outsider)).get(URL, {"q": "muster"})

    assert response.status_code == 403
    assert response.json() == {"error": "You have no access to recipients."}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user", "admin"])
def test_recipient_search_returns_labelled_tokens(client_for, request, role):
    user = UserFactory(first_name="Max", last_name="Muster", email="max@calserver.example")
    customer = CustomerFactory(number="1001", name="Muster GmbH", emails=["einkauf@muster.example"])
    distribution_list = DistributionListFactory(name="Muster-Verteiler", description="Alle Muster")
    system = SystemAddressFactory(name="Muster-Labor", email="labor@calserver.example")

    response = english(client_for(request.getfixturevalue(role))).get(URL, {"q": "muster"})

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert response.json() == {
        "results": [
            {
                "token": f"user:{user.pk}",
                "label": "Max Muster",
                "kind": "user",
                "kind_label": "User",
                "detail": "max@calserver.example",
            },
            {
                "token": f"customer:{customer.pk}",
                "label": "1001 · Muster GmbH",
                "kind": "customer",
                "kind_label": "Customer",
                "detail": "einkauf@muster.example",
            },
            {
                "token": f"list:{distribution_list.pk}",
                "label": "Muster-Verteiler",
                "kind": "list",
                "kind_label": "Distribution list",
                "detail": "Alle Muster",
            },
            {
                "token": f"system:{system.pk}",
                "label": "Muster-Labor",
                "kind": "system",
                "kind_label": "System address",
                "detail": "labor@calserver.example",
            },
        ]
    }


@pytest.mark.django_db
def test_recipient_search_hides_lists_of_other_teams(client_for, viewer, team):
    DistributionListFactory(name="Team Muster", owner_group=team)

    response = client_for(viewer).get(URL, {"q": "muster"})

    assert response.json() == {"results": []}


@pytest.mark.django_db
@pytest.mark.parametrize(("limit", "expected"), [("2", 2), ("0", 1), ("abc", 20), ("1000", 50)])
def test_recipient_search_limit_is_bounded(client_for, admin, limit, expected):
    for n in range(60):
        CustomerFactory(number=str(5000 + n), name=f"Muster {n}")

    response = client_for(admin).get(URL, {"q": "muster", "limit": limit})

    assert len(response.json()["results"]) == expected


@pytest.mark.django_db
def test_recipient_search_post_not_allowed(client_for, admin):
    response = client_for(admin).post(URL, {"q": "muster"})

    assert response.status_code == 405
    assert response["Allow"] == "GET"
