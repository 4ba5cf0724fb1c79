from urllib.parse import urlencode

from django import template
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

register = template.Library()


@register.simple_tag
def log_url(obj) -> str:
    """The Log list filtered to the entries about obj: `{% load maillog %}{% log_url obj %}`."""
    content_type = ContentType.objects.get_for_model(obj, for_concrete_model=False)
    query = urlencode({"content_type": content_type.pk, "object_id": obj.pk})
    return f"{reverse('maillog:list')}?{query}"
