import pytest
from django.contrib.auth.models import Group

from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    SmtpConfigurationFactory,
    UserFactory,
)


@pytest.fixture
def configuration(db):
    return SmtpConfigurationFactory(
        name="Hauptserver", is_default=True, from_email="labor@calserver.example"
    )


@pytest.fixture
def customer(db):
    return CustomerFactory(number="1001", name="Muster GmbH", emails=["einkauf@muster.example"])


@pytest.fixture
def distribution_list(db):
    member = UserFactory(username="anna", first_name="Anna", last_name="Berg")
    return DistributionListFactory(
        name="Labor-Team", users=[member], addresses=[("extern@partner.example", "Partner")]
    )


@pytest.fixture
def team(power_user):
    group = Group.objects.create(name="Team Nord")
    power_user.groups.add(group)
    return group
