"""Create the demo administrator of the embedded run and print how to log in.

`make run` calls this on every start. The first start creates the user with a random
password, kept (0600) under var/keys/ so that every later start can print it again;
nothing about the demo login is committed or shared between installations. It also makes
sure one team exists ("Standard", or "Default" on an English installation), with the
demo administrator in it if it had to be created, so actions can be given a team at once.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services import team_ensure_default
from calmail.common.env import generated_dev_secret
from calmail.common.roles import ADMINISTRATOR

USERNAME = "admin"


def password_file() -> Path:
    # Looked up at call time, not import time, so CALMAIL_VAR_DIR and tests can move it.
    return Path(settings.VAR_DIR) / "keys" / "demo_admin_password"


class Command(BaseCommand):
    help = (
        "Create the demo superuser 'admin' (group Administrator) with a random password "
        "stored in var/keys/demo_admin_password, and print the login. For DEBUG=true demos."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000/",
            help="The address printed with the login (default: %(default)s).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even though DEBUG is off. A known superuser password does not belong "
            "in production; use createsuperuser there.",
        )

    def handle(self, *args, url: str, force: bool, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "ensure_demo_admin creates a superuser for demos and runs only with DEBUG=true. "
                "In production use 'manage.py createsuperuser' (or pass --force)."
            )
        try:
            administrators = Group.objects.get(name=ADMINISTRATOR)
        except Group.DoesNotExist:
            raise CommandError(
                f"The group {ADMINISTRATOR!r} does not exist yet: run 'manage.py migrate' first."
            ) from None

        user_model = get_user_model()
        path = password_file()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: USERNAME}).first()
        if user is None:
            # Reuses a stored password if only the database was reset, so the login printed
            # before stays valid.
            password = generated_dev_secret(path, lambda: secrets.token_urlsafe(12))
            with transaction.atomic():
                user = user_model._default_manager.create_superuser(
                    **{user_model.USERNAME_FIELD: USERNAME}, email="", password=password
                )
                user.groups.add(administrators)
            self.stdout.write(self.style.SUCCESS(f"Created the demo administrator {USERNAME!r}."))
            self.ensure_team(user)
        else:
            self.ensure_team(user)
            password = path.read_text().strip() if path.exists() else ""
            if not password or not user.check_password(password):
                # Printing the stored value would hand out a login that no longer works.
                self.stdout.write(
                    self.style.WARNING(
                        f"The user {USERNAME!r} exists, but its password is no longer the "
                        f"generated demo password ({path} is missing or outdated), so none "
                        "is shown. "
                        f"Set a new one with: python manage.py changepassword {USERNAME}"
                    )
                )
                return

        self.stdout.write(f"Demo admin: {url}  user: {USERNAME}  password: {password}")

    def ensure_team(self, user) -> None:
        """Without any team only administrators could work: make the first one."""
        team, created = team_ensure_default(user=user)
        if not created:
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the team {team.name!r} with the demo administrator {USERNAME!r} in it."
            )
        )
