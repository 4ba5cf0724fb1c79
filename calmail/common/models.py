from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ColumnChoice(models.Model):
    """The columns a user chose to see in one list (a table class, by its key).

    Only the page follows it: exports always carry every column.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="column_choices",
    )
    table_key = models.CharField(_("table"), max_length=100)
    columns = models.JSONField(_("columns"), default=list)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("column choice")
        verbose_name_plural = _("column choices")
        constraints = [
            models.UniqueConstraint(fields=["user", "table_key"], name="column_choice_unique")
        ]

    def __str__(self):
        return f"{self.user_id}: {self.table_key}"
