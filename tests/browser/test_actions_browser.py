"""Actions end to end in the browser: create an action for "every first Monday at 07:00",
watch the next runs follow the rule, run it now, and find its mails in the outbox."""

from django.contrib.auth.models import Group
from playwright.sync_api import expect

from actions import runs
from actions.models import Action, ActionRun
from calmail.common.roles import POWER_USER
from mailbox.models import OutboxMessage
from tests.browser.recipient_picker import chip, pick
from tests.factories import CustomerFactory, MailTemplateFactory, SmtpConfigurationFactory

PASSWORD = "correct horse battery staple"


def test_create_action_preview_runs_and_run_now(page, live_server, login, django_user_model):
    team = Group.objects.create(name="Kalibrierlabor")
    user = django_user_model.objects.create_user(username="paula", password=PASSWORD)
    user.groups.add(Group.objects.get(name=POWER_USER), team)
    configuration = SmtpConfigurationFactory(name="Labor-Server", is_default=True)
    template = MailTemplateFactory(
        name="Fällige Prüfmittel", owner_group=team, empty_attachment_allowed=True
    )
    customer = CustomerFactory(number="4711", emails=["einkauf@muster.example"])
    login(user, PASSWORD)

    page.goto(f"{live_server.url}/actions/new/")
    expect(page.locator("select[name=smtp_configuration]")).to_have_value(str(configuration.pk))
    page.fill("input[name=description]", "Erster Montag")
    for day in range(1, 8):
        page.click(f"label[for=id_days_{day - 1}]")
    page.click("label[for=id_weekdays_0]")
    page.fill("input[name=time_of_day]", "07:00")
    page.fill("input[name=start]", "2026-01-01T00:00")
    # The next runs follow the rule as it is edited (JSON endpoint, no reload).
    next_runs = page.locator("#next-runs li")
    expect(next_runs).to_have_count(10)
    expect(next_runs.first).to_contain_text("07:00")
    page.click("label[for=id_months_1]")
    page.click("[data-toggle-grid=days] [data-toggle-none]")
    page.click("label[for=id_days_29]")
    page.click("label[for=id_days_30]")
    expect(next_runs).to_have_count(0)
    expect(page.locator("#next-runs-message")).not_to_be_empty()
    page.click("[data-toggle-grid=months] [data-toggle-none]")
    page.click("[data-toggle-grid=days] [data-toggle-none]")
    for day in range(1, 8):
        page.click(f"label[for=id_days_{day - 1}]")
    expect(next_runs).to_have_count(10)
    # The recipient picker: a typed address becomes a chip, a search result another; the
    # field submits their tokens, and a chip's button removes it again.
    page.fill("#id_recipients_search", "ops@example.com")
    page.press("#id_recipients_search", "Enter")
    expect(chip(page, "recipients", "ops@example.com")).to_be_visible()
    pick(page, "recipients", "4711", "4711")
    expect(page.locator("input[name=recipients]")).to_have_value(
        f"ops@example.com, customer:{customer.pk}"
    )
    chip(page, "recipients", "ops@example.com").locator("button").click()
    expect(page.locator("input[name=recipients]")).to_have_value(f"customer:{customer.pk}")
    page.select_option("select[name=template]", str(template.pk))
    page.select_option("select[name=group]", str(team.pk))
    with page.expect_navigation():
        page.click("input[name=submit]")

    action = Action.objects.get()
    assert (action.description, action.days, action.weekdays, action.recipients) == (
        "Erster Montag",
        [1, 2, 3, 4, 5, 6, 7],
        [0],
        [f"customer:{customer.pk}"],
    )
    expect(page.locator("table")).to_contain_text("Erster Montag")

    page.goto(f"{live_server.url}/actions/{action.pk}/run-now/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    run = ActionRun.objects.get()
    assert run.trigger == "manual"
    # What the worker's task runs, here in the test process.
    runs.run_execute(run_id=run.pk)

    page.reload()
    expect(page.locator("table")).to_contain_text("1")
    page.goto(f"{live_server.url}/outbox/")
    expect(page.locator("table")).to_contain_text("einkauf@muster.example")
    assert list(OutboxMessage.objects.values_list("action", "to")) == [
        (action.pk, ["einkauf@muster.example"])
    ]
