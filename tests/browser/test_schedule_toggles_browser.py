"""The schedule's toggle grids in Chromium (issue 18): days, weekdays and months are
clicked, chosen all / none at once and worked with the keyboard (Tab, Space, arrows);
the next runs follow every toggle, and the saved action shows its toggles again."""

import datetime as dt

import time_machine
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from actions.models import Action
from calmail.common.roles import ADMINISTRATOR
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory

PASSWORD = "correct horse battery staple"


def checked(page, name: str) -> list[str]:
    return page.eval_on_selector_all(
        f"input[type=checkbox][name={name}]:checked", "boxes => boxes.map(b => b.value)"
    )


def test_toggle_grids_drive_the_next_runs_and_are_kept(page, live_server, login, django_user_model):
    user = django_user_model.objects.create_user(username="anna", password=PASSWORD)
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    SmtpConfigurationFactory(name="Labor-Server", is_default=True)
    template = MailTemplateFactory(name="Erinnerung", empty_attachment_allowed=True)
    # The next runs count from now: a fixed now (ticking, the browser waits on timers).
    with time_machine.travel(dt.datetime(2026, 1, 15, 10, tzinfo=dt.UTC), tick=True):
        login(user, PASSWORD)
        page.goto(f"{live_server.url}/actions/new/")
        expect(page.locator("input[name=recipients]")).to_have_value("")
        expect(page.locator("input[name=preview]")).to_be_enabled()
        page.fill("input[name=description]", "Erster Montag im Februar")
        page.fill("input[name=time_of_day]", "07:00")
        page.fill("input[name=start]", "2026-01-01T00:00")
        next_runs = page.locator("#next-runs li")
        expect(next_runs).to_have_count(10)

        # Clicks: days 1-7 and Monday.
        for day in range(1, 8):
            page.click(f"label[for=id_days_{day - 1}]")
        page.click("label[for=id_weekdays_0]")
        expect(next_runs.first).to_contain_text("Montag, 2. Februar 2026")

        # Select all / none per group.
        page.click("[data-toggle-grid=months] [data-toggle-all]")
        assert checked(page, "months") == [str(month) for month in range(1, 13)]
        page.click("[data-toggle-grid=months] [data-toggle-none]")
        assert checked(page, "months") == []

        # The keyboard: Tab to February, Space checks it; the arrow moves to March.
        page.focus("#id_months_0")
        page.keyboard.press("Tab")
        expect(page.locator("#id_months_1")).to_be_focused()
        page.keyboard.press("Space")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#id_months_2")).to_be_focused()
        page.keyboard.press("Space")
        page.keyboard.press("Space")
        assert checked(page, "months") == ["2"]
        expect(next_runs.first).to_contain_text("Montag, 2. Februar 2026")
        expect(next_runs.nth(1)).to_contain_text("Montag, 1. Februar 2027")

        # A rule that can never fire: the list empties and says why.
        page.click("[data-toggle-grid=days] [data-toggle-none]")
        page.click("label[for=id_days_29]")
        expect(next_runs).to_have_count(0)
        expect(page.locator("#next-runs-message")).not_to_be_empty()
        page.click("label[for=id_days_29]")
        for day in range(1, 8):
            page.click(f"label[for=id_days_{day - 1}]")
        expect(next_runs).to_have_count(10)

        page.fill("#id_recipients_search", "ops@example.com")
        page.press("#id_recipients_search", "Enter")
        page.select_option("select[name=template]", str(template.pk))
        with page.expect_navigation():
            page.click("input[name=submit]")

        action = Action.objects.get()
        assert (action.days, action.weekdays, action.months) == ([1, 2, 3, 4, 5, 6, 7], [0], [2])

        page.goto(f"{live_server.url}/actions/{action.pk}/edit/")
        assert checked(page, "days") == ["1", "2", "3", "4", "5", "6", "7"]
        assert checked(page, "weekdays") == ["0"]
        assert checked(page, "months") == ["2"]
        expect(next_runs.first).to_contain_text("Februar 2026")
