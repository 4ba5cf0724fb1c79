"""The navigation menu of calServer's data and the recipients built from it: inventory's
own pages, and those of the apps that bring the data in (import, calServer connection)."""

from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavGroup

DATA_MENU = NavGroup(key="data", label=_("Data & recipients"), icon="database")
