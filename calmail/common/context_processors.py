"""The navigation: only the sections the user may open (calmail.common.navigation)."""

from calmail.common.navigation import menu_of, sections_for


def navigation(request):
    user = getattr(request, "user", None)
    if user is None:
        return {}
    sections = sections_for(user)
    return {"nav_sections": sections, "nav_menu": menu_of(sections)}
