"""Re-encrypt every stored secret with the first key in FERNET_KEYS."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models
from django.db.models.functions import Cast

from calmail.common.crypto import SecretDecryptionError, rotate_token
from calmail.common.fields import EncryptedTextField


class Command(BaseCommand):
    help = (
        "Re-encrypt all secrets with the first of FERNET_KEYS. Put the new key first, keep the "
        "old ones after it, run this, then remove the old keys."
    )

    def handle(self, *args, **options):
        rotated = 0
        failures = []
        for model in apps.get_models():
            for field in model._meta.concrete_fields:
                if not isinstance(field, EncryptedTextField):
                    continue
                # Cast to a plain text column so the ciphertext is read as stored, undecrypted;
                # the plaintext never passes through this command.
                rows = (
                    model._base_manager.exclude(**{field.attname: ""})
                    .annotate(ciphertext=Cast(field.attname, output_field=models.TextField()))
                    .values_list("pk", "ciphertext")
                )
                for pk, token in rows.iterator():
                    if not token:
                        continue
                    try:
                        new_token = rotate_token(token)
                    except SecretDecryptionError:
                        failures.append(f"{model._meta.label} #{pk} ({field.name})")
                        continue
                    model._base_manager.filter(pk=pk).update(
                        **{field.attname: models.Value(new_token, output_field=models.TextField())}
                    )
                    rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} secret(s) with the first key.")
        if failures:
            raise CommandError(
                "These secrets could not be decrypted with any configured key and were left unchanged: "
                + ", ".join(failures)
            )
