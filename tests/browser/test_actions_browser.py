"""Actions end to end in the browser: create an action for "every first Monday at 07:00",
watch the next runs follow the rule, run it now, and find its mails in the outbox."""

from django.contrib.auth.models import Group
from playwright.sync_api import expect

from actions import services
from actions.models import Action, ActionRun
from calmail.common.roles import POWER_USER
from mailbox.models import OutboxMessage
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
    page.select_option("select[name=days]", ["1", "2", "3", "4", "5", "6", "7"])
    page.select_option("select[name=weekdays]", ["0"])
    page.fill("input[name=time_of_day]", "07:00")
    page.fill("input[name=start]", "2026-01-01T00:00")
    # The next runs follow the rule as it is edited (JSON endpoint, no reload).
    runs = page.locator("#next-runs li")
    expect(runs).to_have_count(10)
    expect(runs.first).to_contain_text("07:00")
    page.select_option("select[name=months]", ["2"])
    page.select_option("select[name=days]", ["30", "31"])
    expect(runs).to_have_count(0)
    expect(page.locator("#next-runs-message")).not_to_be_empty()
    page.select_option("select[name=months]", [])
    page.select_option("select[name=days]", ["1", "2", "3", "4", "5", "6", "7"])
    expect(runs).to_have_count(10)
    # Suggestions for the token being typed (the datalist keeps the tokens before it).
    page.fill("input[name=recipients]", "ops@example.com, 4711")
    options = page.locator("#action-recipient-options option")
    expect(options.first).to_have_attribute("value", f"ops@example.com, customer:{customer.pk}")
    page.fill("input[name=recipients]", f"customer:{customer.pk}")
    page.select_option("select[name=template]", str(template.pk))
    page.select_option("select[name=group]", str(team.pk))
    with page.expect_navigation():
        page.click("input[name=submit]")

    action = Action.objects.get()
    assert (action.description, action.days, action.weekdays) == (
        "Erster Montag",
        [1, 2, 3, 4, 5, 6, 7],
        [0],
    )
    expect(page.locator("table")).to_contain_text("Erster Montag")

    page.goto(f"{live_server.url}/actions/{action.pk}/run-now/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    run = ActionRun.objects.get()
    assert run.trigger == "manual"
    # What the worker's task runs, here in the test process.
    services.run_execute(run_id=run.pk)

    page.reload()
    expect(page.locator("table")).to_contain_text("1")
    page.goto(f"{live_server.url}/outbox/")
    expect(page.locator("table")).to_contain_text("einkauf@muster.example")
    assert list(OutboxMessage.objects.values_list("action", "to")) == [
        (action.pk, ["einkauf@muster.example"])
    ]
