"""Query pieces the list pages share."""

from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce


def related_count(model, field: str, **conditions) -> Coalesce:
    """The number of `model` rows whose `field` points at the outer row (0 for none), for
    annotating a list. A correlated subquery per count: joining several tables in one
    GROUP BY would multiply the rows before counting."""
    subquery = (
        model._default_manager.filter(**{field: OuterRef("pk")}, **conditions)
        .order_by()
        .values(field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(subquery, output_field=IntegerField()), 0)
