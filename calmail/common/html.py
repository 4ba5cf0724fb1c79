"""Showing a mail's HTML body safely: the sanitiser and the Content-Security-Policies of the
sandboxed body frame and of downloads, shared by the outbox, the template preview and compose."""

import nh3
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control
from django.utils.safestring import mark_safe

# What a mail body may keep: structure, text formatting, tables, links and inline images.
BODY_ATTRIBUTES = {
    **{tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "title", "lang", "dir", "align", "valign", "width", "height", "bgcolor"},
}
BODY_STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "line-height",
    "letter-spacing",
    "text-align",
    "text-decoration",
    "text-transform",
    "vertical-align",
    "white-space",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-collapse",
    "border-color",
    "border-radius",
    "border-spacing",
    "border-style",
    "border-width",
    "width",
    "max-width",
    "min-width",
    "height",
    "display",
}
INLINE_IMAGE_PREFIXES = (
    "data:image/png;",
    "data:image/gif;",
    "data:image/jpeg;",
    "data:image/webp;",
)

# The frame's own policy: no script, no request to anywhere; inline styles of the mail only.
BODY_FRAME_POLICY = "; ".join(
    [
        "default-src 'none'",
        "img-src data:",
        "style-src 'unsafe-inline'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)


def _body_attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # External images are tracking pixels and leak that the mail was opened: only images
    # embedded in the mail itself are kept. data: links could carry whole documents.
    if tag == "img" and attribute == "src":
        return value if value.lower().startswith(INLINE_IMAGE_PREFIXES) else None
    if attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def sanitise_body_html(html: str) -> str:
    """The mail's HTML with everything active or remote removed (nh3)."""
    return nh3.clean(
        html,
        attributes=BODY_ATTRIBUTES,
        attribute_filter=_body_attribute_filter,
        url_schemes={"http", "https", "mailto", "tel", "data"},
        filter_style_properties=BODY_STYLE_PROPERTIES,
        clean_content_tags={"script", "style", "title"},
        # Links leave the frame in a new tab (the frame's sandbox allows only that).
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
    )


# Should a browser ever render a download instead of saving it, nothing in it may run.
DOWNLOAD_POLICY = "default-src 'none'; sandbox"


def body_frame_response(*, title: str, html: str) -> HttpResponse:
    """The page for an <iframe sandbox>: the sanitised body alone, under BODY_FRAME_POLICY,
    never cached (it is one user's mail)."""
    content = render_to_string(
        "mailbox/body_frame.html",
        {"title": title, "body": mark_safe(sanitise_body_html(html))},  # noqa: S308 (sanitised by nh3)
    )
    response = HttpResponse(content, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = BODY_FRAME_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    patch_cache_control(response, private=True, no_store=True)
    return response


def protect_download(response: HttpResponse) -> HttpResponse:
    """Mark a file download as inert: no sniffing, nothing runs, never cached."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_POLICY
    patch_cache_control(response, private=True, no_store=True)
    return response
