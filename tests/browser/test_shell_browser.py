"""The page shell in a real browser: login, navigation, language switcher, logout, calmail.js."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calmail.common.roles import ADMINISTRATOR

PASSWORD = "correct horse battery staple"


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user(
        username="ada", password=PASSWORD, first_name="Ada", last_name="Admin"
    )
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


def test_shell_administrator_logs_in_switches_language_and_logs_out(
    page, live_server, login, administrator
):
    login(administrator, PASSWORD)

    # Home opens the overview, the first entry of the navigation.
    expect(page).to_have_url(f"{live_server.url}/overview/")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    # The link is found by its target, not its (translated) label.
    nav_link = page.locator("nav a.nav-link[href='/overview/']")
    expect(nav_link).to_be_visible()
    expect(nav_link).to_have_attribute("aria-current", "page")
    expect(page.locator("#user-menu")).to_contain_text("Ada Admin")

    with page.expect_navigation():
        page.click("button[name=language][value=en]")

    expect(page).to_have_url(f"{live_server.url}/overview/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("button[name=language][value=en]")).to_have_attribute(
        "aria-pressed", "true"
    )

    page.click("#user-menu")
    with page.expect_navigation():
        page.click("[data-testid=logout]")

    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.locator("input[name=username]")).to_be_visible()
    expect(page.locator("#user-menu")).to_have_count(0)
    # The language choice outlives the session.
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_login_wrong_password_shows_error_in_german(page, live_server, login, administrator):
    login(administrator, "not the password")

    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.locator(".alert-danger")).to_contain_text("Bitte Benutzername und Passwort")


def test_language_switcher_on_login_page_keeps_next(page, live_server):
    page.goto(f"{live_server.url}/smtp/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/smtp/")

    with page.expect_navigation():
        page.click("button[name=language][value=en]")

    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/smtp/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("label[for=id_username]")).to_contain_text("Username")


# Bulk-action markup as list pages will have it: row checkboxes outside the form.
BULK_MARKUP = """
<form id="bulk" method="get" action="/accounts/login/">
  <input type="hidden" name="confirmed" value="yes">
  <input type="checkbox" id="select-all" data-select-all="pk">
  <button type="submit" id="bulk-delete" data-confirm="Delete the selected rows?">Delete</button>
</form>
<input type="checkbox" name="pk" value="1" form="bulk">
<input type="checkbox" name="pk" value="2" form="bulk">
<input type="checkbox" name="pk" value="3" form="bulk">
"""


def test_calmail_js_select_all_and_confirm(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    # calmail.js listens on the document, so markup added later behaves like served markup.
    page.eval_on_selector(
        "main", "(main, html) => main.insertAdjacentHTML('beforeend', html)", BULK_MARKUP
    )
    rows = page.locator("input[name=pk]")
    select_all = page.locator("#select-all")

    select_all.check()
    assert [rows.nth(i).is_checked() for i in range(3)] == [True, True, True]

    rows.nth(1).uncheck()
    assert select_all.is_checked() is False
    assert select_all.evaluate("box => box.indeterminate") is True

    rows.nth(1).check()
    assert select_all.is_checked() is True

    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.click("#bulk-delete")
    assert dialogs == ["Delete the selected rows?"]
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#bulk-delete")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?confirmed=yes&pk=1&pk=2&pk=3$"))
