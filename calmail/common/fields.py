"""Model fields shared by the sections."""

from django.db import models

from calmail.common.crypto import SecretDecryptionError, decrypt_text, encrypt_text


class UndecryptableSecret:
    """What an encrypted field holds when no configured key opens its ciphertext.

    Pages keep working (they show "set, but unreadable"), saving the row keeps the
    ciphertext untouched, and whoever needs the plaintext gets a clear error.
    """

    def __init__(self, token: str):
        self.token = token

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return isinstance(other, UndecryptableSecret) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __repr__(self) -> str:
        return "<UndecryptableSecret>"

    def reveal(self) -> str:
        raise SecretDecryptionError(
            "The stored secret cannot be decrypted with the configured FERNET_KEYS. "
            "Restore the key it was encrypted with, or enter the secret again."
        )


def reveal_secret(value) -> str:
    """The plaintext of an encrypted field's value, or SecretDecryptionError."""
    if isinstance(value, UndecryptableSecret):
        return value.reveal()
    return value or ""


class EncryptedTextField(models.TextField):
    """A text column that stores only Fernet ciphertext; Python code sees the plaintext.

    Encryption is randomised, so the column cannot be filtered by value except for
    emptiness (an empty value is stored as an empty string, unencrypted).
    """

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return decrypt_text(value)
        except SecretDecryptionError:
            return UndecryptableSecret(value)

    def to_python(self, value):
        if value is None or isinstance(value, UndecryptableSecret):
            return value
        return str(value)

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        if isinstance(value, UndecryptableSecret):
            return value.token
        return encrypt_text(str(value))

    def value_to_string(self, obj):
        # Serialisation (dumpdata) must never emit the plaintext.
        return ""
