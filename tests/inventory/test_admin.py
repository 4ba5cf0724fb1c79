import pytest

from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    SupportTicketFactory,
    SystemAddressFactory,
)

MODELS = [
    "customer",
    "location",
    "instrument",
    "supportticket",
    "userprofile",
    "distributionlist",
    "systemaddress",
]


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist_and_add_page_open(superuser_client, model):
    CustomerFactory(name="Muster GmbH")
    InstrumentFactory()
    SupportTicketFactory()
    DistributionListFactory(addresses=["a@calserver.example"])
    SystemAddressFactory()

    changelist = superuser_client.get(f"/admin/inventory/{model}/")
    add = superuser_client.get(f"/admin/inventory/{model}/add/")

    assert (changelist.status_code, add.status_code) == (200, 200)


@pytest.mark.django_db
def test_admin_instrument_change_page_shows_due_date_read_only(superuser_client):
    instrument = InstrumentFactory(inventory_number="INV-ADMIN")

    response = superuser_client.get(f"/admin/inventory/instrument/{instrument.pk}/change/")

    assert response.status_code == 200
    assert "INV-ADMIN" in response.content.decode()
    assert 'name="next_due_date"' not in response.content.decode()
