import pytest

from calserver.models import CalServerConnection
from calserver.services import new_connection
from tests.calserver_fake import (
    V1_KEY,
    V1_PASSWORD,
    V1_USER,
    V2_EMAIL,
    V2_PASSWORD,
    FakeCalServer,
    v1_inventory,
    v2_customer,
    v2_inventory,
)
from tests.section_fixtures import english  # noqa: F401

CUSTOMER_A = "0b6f5e1a-aaaa-4c1d-9e1f-000000000001"
CUSTOMER_B = "0b6f5e1a-bbbb-4c1d-9e1f-000000000002"


@pytest.fixture
def fake(settings):
    """A running fake calServer with a few v1 and v2 records; retries wait 10 ms."""
    settings.CALMAIL_CALSERVER_BACKOFF_SECONDS = 0.01
    settings.CALMAIL_CALSERVER_RETRIES = 3
    server = FakeCalServer()
    server.v2["/api/v2/customers"] = [
        v2_customer(CUSTOMER_A, "10001", "Muster Messtechnik GmbH"),
        v2_customer(CUSTOMER_B, "10002", "Labor Beispiel AG", city="Erfurt"),
    ]
    server.v2["/api/v2/inventories"] = [
        v2_inventory(f"ea79b775-8b4b-0000-0000-{n:012d}", f"INV-{n:03d}", CUSTOMER_A)
        for n in range(1, 6)
    ]
    server.v1["/api/customer"] = (
        "customer",
        [{"KTAG": "K1", "K4602": "Muster Messtechnik GmbH"}, {"KTAG": "K2", "K4602": "Labor AG"}],
    )
    server.v1["/api/inventory"] = (
        "inventory",
        [v1_inventory(f"M{n}", f"V1-{n:03d}", "K1") for n in range(1, 4)],
    )
    server.start()
    yield server
    server.stop()


def make_connection(fake, version="v2", **overrides) -> CalServerConnection:
    connection = new_connection(api_version=version)
    connection.base_url = fake.url
    connection.page_size = 2
    connection.timeout = 2
    if version == "v1":
        connection.username = V1_USER
        connection.password = V1_PASSWORD
        connection.api_key = V1_KEY
    else:
        connection.email = V2_EMAIL
        connection.password = V2_PASSWORD
    for name, value in overrides.items():
        setattr(connection, name, value)
    connection.full_clean()
    connection.save()
    return connection


@pytest.fixture
def v2_connection(fake, db):
    return make_connection(fake, "v2")


@pytest.fixture
def v1_connection(fake, db):
    return make_connection(fake, "v1")
