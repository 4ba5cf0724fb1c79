"""Driving the recipient picker (calmail.common.widgets.RecipientPicker with
static/js/recipient-picker.js) in the browser, as compose, actions and the template preview
share it."""

from playwright.sync_api import expect


def pick(page, field: str, query: str, label: str) -> None:
    """Type into a recipient field's search box and pick the suggestion with that label."""
    page.fill(f"#id_{field}_search", query)
    option = page.locator(f"[data-token-box={field}] [data-option]", has_text=label)
    expect(option.first).to_be_visible()
    option.first.dispatch_event("mousedown")
    expect(chip(page, field, label)).to_be_visible()


def chip(page, field: str, label: str):
    return page.locator(f"[data-token-box={field}] [data-token]", has_text=label)
