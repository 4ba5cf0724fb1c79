import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from calmail.common.crypto import SecretDecryptionError, decrypt_text, encrypt_text
from calmail.common.fields import UndecryptableSecret, reveal_secret
from smtpconfig.models import SmtpConfiguration
from tests.factories import SmtpConfigurationFactory

SECRET = "s3cret-Pässwort"


def raw_password(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM smtpconfig_smtpconfiguration WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_encrypted_field_raw_column_holds_no_plaintext():
    configuration = SmtpConfigurationFactory(password=SECRET)

    raw = raw_password(configuration.pk)

    assert SECRET not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert SmtpConfiguration.objects.get(pk=configuration.pk).password == SECRET


@pytest.mark.django_db
def test_encrypted_field_empty_value_stays_empty():
    configuration = SmtpConfigurationFactory(password="")

    assert raw_password(configuration.pk) == ""
    assert SmtpConfiguration.objects.get(pk=configuration.pk).password == ""


@pytest.mark.django_db
def test_encrypted_field_wrong_key_gives_clear_error_not_crash(settings):
    configuration = SmtpConfigurationFactory(password=SECRET)
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]

    loaded = SmtpConfiguration.objects.get(pk=configuration.pk)

    assert isinstance(loaded.password, UndecryptableSecret)
    assert loaded.has_password is True
    with pytest.raises(
        SecretDecryptionError, match="cannot be decrypted with the configured FERNET_KEYS"
    ):
        reveal_secret(loaded.password)


@pytest.mark.django_db
def test_encrypted_field_saving_undecryptable_row_keeps_ciphertext(settings):
    configuration = SmtpConfigurationFactory(password=SECRET)
    before = raw_password(configuration.pk)
    old_keys = settings.FERNET_KEYS
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    loaded = SmtpConfiguration.objects.get(pk=configuration.pk)

    loaded.name = "renamed"
    loaded.save()
    settings.FERNET_KEYS = old_keys

    assert raw_password(configuration.pk) == before
    assert SmtpConfiguration.objects.get(pk=configuration.pk).password == SECRET


@pytest.mark.django_db
def test_rotate_fernet_keys_reencrypts_with_first_key(settings):
    old_key = settings.FERNET_KEYS[0]
    configuration = SmtpConfigurationFactory(password=SECRET)
    SmtpConfigurationFactory(password="")
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]

    call_command("rotate_fernet_keys")
    settings.FERNET_KEYS = [new_key]

    assert Fernet(new_key).decrypt(raw_password(configuration.pk).encode()).decode() == SECRET
    assert SmtpConfiguration.objects.get(pk=configuration.pk).password == SECRET


@pytest.mark.django_db
def test_rotate_fernet_keys_reports_undecryptable_rows(settings):
    configuration = SmtpConfigurationFactory(password=SECRET)
    before = raw_password(configuration.pk)
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError, match=rf"smtpconfig.SmtpConfiguration #{configuration.pk}"):
        call_command("rotate_fernet_keys")

    assert raw_password(configuration.pk) == before


def test_decrypt_text_after_key_rotation_order(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FERNET_KEYS = [second]
    token = encrypt_text("x")
    settings.FERNET_KEYS = [first, second]

    assert decrypt_text(token) == "x"


def test_invalid_fernet_key_is_a_configuration_error_without_the_key(settings):
    settings.FERNET_KEYS = ["not-a-key-at-all"]

    with pytest.raises(ImproperlyConfigured) as excinfo:
        encrypt_text("x")

    assert str(excinfo.value) == (
        "FERNET_KEYS entry 1 is not a valid Fernet key (32 url-safe base64-encoded bytes)."
    )
    assert "not-a-key-at-all" not in str(excinfo.value)
