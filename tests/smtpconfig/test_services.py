import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from smtpconfig import services
from smtpconfig.models import SmtpConfiguration
from tests.factories import SmtpConfigurationFactory


def values(**overrides):
    data = {
        "name": "Labor",
        "mailer": "smtp",
        "host": "mail.example.com",
        "port": 587,
        "security": "starttls",
        "timeout": 10,
    }
    data.update(overrides)
    return data


def defaults():
    return list(SmtpConfiguration.objects.filter(is_default=True).values_list("name", flat=True))


@pytest.mark.django_db
def test_create_first_configuration_is_default_even_if_not_asked():
    services.smtp_configuration_create(values=values(name="Erster"))
    services.smtp_configuration_create(values=values(name="Zweiter"))

    assert defaults() == ["Erster"]


@pytest.mark.django_db
def test_database_refuses_a_second_default():
    SmtpConfigurationFactory(is_default=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        SmtpConfigurationFactory(is_default=True)


@pytest.mark.django_db
def test_set_default_leaves_exactly_one():
    first = services.smtp_configuration_create(values=values(name="A"))
    second = services.smtp_configuration_create(values=values(name="B"))

    services.smtp_configuration_set_default(configuration=second)
    services.smtp_configuration_set_default(configuration=second)

    first.refresh_from_db()
    assert defaults() == ["B"]
    assert first.is_default is False


@pytest.mark.django_db
def test_update_returns_changed_fields_and_validates():
    configuration = services.smtp_configuration_create(values=values())

    changed = services.smtp_configuration_update(
        configuration=configuration, values=values(port=2525, password="x")
    )
    with pytest.raises(ValidationError) as excinfo:
        services.smtp_configuration_update(configuration=configuration, values=values(port=70000))

    assert changed == ["port", "password"]
    assert "port" in excinfo.value.message_dict


@pytest.mark.django_db
def test_copy_name_counts_up_when_taken(settings):
    settings.LANGUAGE_CODE = "en"
    original = SmtpConfigurationFactory(name="Labor")
    SmtpConfigurationFactory(name="Labor (copy)")

    assert services.copy_name(original.name) == "Labor (copy 2)"


@pytest.mark.django_db
def test_copy_name_stays_within_field_length():
    name = "x" * 100

    assert len(services.copy_name(name)) == 100


@pytest.mark.django_db
def test_delete_default_with_successor_moves_default():
    default = services.smtp_configuration_create(values=values(name="A"))
    other = services.smtp_configuration_create(values=values(name="B"))

    with pytest.raises(ValidationError, match="Choose which configuration becomes the default"):
        services.smtp_configuration_delete(configuration=default)
    services.smtp_configuration_delete(configuration=default, successor=other)

    assert defaults() == ["B"]


@pytest.mark.django_db(transaction=True)
def test_set_default_concurrent_switches_leave_exactly_one_default():
    import threading

    from django.db import connection

    configurations = [
        services.smtp_configuration_create(values=values(name=f"S{i}")) for i in range(8)
    ]
    errors = []

    def switch(barrier, configuration):
        try:
            barrier.wait(timeout=10)
            services.smtp_configuration_set_default(configuration=configuration)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    for _round in range(5):
        barrier = threading.Barrier(len(configurations))
        threads = [threading.Thread(target=switch, args=(barrier, c)) for c in configurations]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert SmtpConfiguration.objects.filter(is_default=True).count() == 1
