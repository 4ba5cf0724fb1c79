"""Teams. A team is a Django group that is not a role (calmail.common.roles): actions,
templates, distribution lists and mails belong to teams through their group foreign keys,
so a team needs no table of its own. The proxy gives teams their own manager (roles never
show up where a team is chosen) and their own permissions."""

from django.contrib.auth.models import Group
from django.db import models
from django.utils.translation import gettext_lazy as _

from calmail.common.roles import ROLE_NAMES


class TeamManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().exclude(name__in=ROLE_NAMES)


class Team(Group):
    objects = TeamManager()

    class Meta:
        proxy = True
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]
