from django import template

from mailbox.tables import parameters_text as _parameters_text

register = template.Library()


@register.filter
def parameters_text(parameters) -> str:
    """A mail's parameters in words, as the outbox list shows them (whole here)."""
    return _parameters_text(parameters) if parameters else ""
