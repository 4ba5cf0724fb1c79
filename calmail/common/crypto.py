"""Encryption of secrets at rest with MultiFernet (first key encrypts, every key decrypts)."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptionError(Exception):
    """Stored ciphertext that none of the configured FERNET_KEYS can open."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FERNET_KEYS is empty: secrets cannot be encrypted.")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself: it is a secret even when malformed.
            raise ImproperlyConfigured(
                f"FERNET_KEYS entry {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)


def get_fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FERNET_KEYS))


def encrypt_text(plaintext: str) -> str:
    return get_fernet().encrypt(plaintext.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return get_fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with the configured FERNET_KEYS. "
            "Restore the key it was encrypted with (keep it after the new one), or enter the secret again."
        ) from None


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the first key; raises SecretDecryptionError if no key opens it."""
    try:
        return get_fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with the configured FERNET_KEYS."
        ) from None
