"""The navigation: only the sections the user may open (calmail.common.navigation)."""

from calmail.common.navigation import sections_for


def navigation(request):
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"nav_sections": sections_for(user)}
