"""Day one, as a new installation is used: from the database `make run` leaves (migrated,
demo administrator, default team), the demo admin sets up a mail server, a team and a
power user; the power user gets the set-password link through the outbox, signs in,
writes a template and an action, runs it now and finds the mail sent. Nobody opens
Django admin."""

import re

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import expect

from actions import runs as action_runs
from actions.models import Action, ActionRun
from calmail.common.roles import POWER_USER
from mailbox.delivery import deliver_due
from mailbox.models import OutboxMessage
from smtpconfig.models import SmtpConfiguration

NEW_PASSWORD = "Kalibrier-Labor-2026!"


def plain_body(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def submit(page, selector="#submit-id-submit"):
    with page.expect_navigation():
        page.click(selector)


def test_first_run_without_django_admin(page, live_server, smtp_server, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.CALMAIL_BASE_URL = live_server.url
    with override_settings(DEBUG=True), open(tmp_path / "out", "w") as out:
        call_command("ensure_demo_admin", url=live_server.url, stdout=out)
    demo_password = (tmp_path / "keys" / "demo_admin_password").read_text().strip()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # The demo admin signs in …
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", demo_password)
    submit(page, "form[action='/accounts/login/'] button[type=submit]")

    # … makes the in-process SMTP server the default configuration …
    page.goto(f"{live_server.url}/smtp/new/")
    page.fill("input[name=name]", "Labor-Server")
    page.fill("input[name=host]", smtp_server.host)
    page.fill("input[name=port]", str(smtp_server.port))
    page.select_option("select[name=security]", "none")
    page.fill("input[name=from_email]", "labor@calserver.example")
    submit(page)
    configuration = SmtpConfiguration.objects.get(name="Labor-Server")
    assert configuration.is_default

    # … creates a team from the navigation …
    page.click("nav a[href='/accounts/users/']")
    page.click("[data-testid=people-tabs] a[href='/accounts/teams/']")
    expect(page.locator("table")).to_contain_text("Standard")
    with page.expect_navigation():
        page.click("a[href='/accounts/teams/new/']")
    page.fill("input[name=name]", "Labor Nord")
    submit(page)
    expect(page.locator("h1")).to_have_text("Labor Nord")

    # … and a power user in it, who gets the set-password link by mail.
    page.goto(f"{live_server.url}/accounts/users/")
    with page.expect_navigation():
        page.click("a[href='/accounts/users/new/']")
    page.fill("input[name=first_name]", "Paula")
    page.fill("input[name=last_name]", "Peters")
    page.fill("input[name=username]", "paula")
    page.fill("input[name=email]", "paula@calserver.example")
    page.check(f"input[name=role][value='{POWER_USER}']")
    page.get_by_label("Labor Nord").check()
    expect(page.locator("input[name=password_mode][value=link]")).to_be_checked()
    submit(page)
    expect(page.locator(".alert-info")).to_contain_text("paula@calserver.example")
    expect(page.locator("table")).to_contain_text("Power-User")

    deliver_due(configuration_id=configuration.pk, worker_id="test")
    [invitation] = smtp_server.messages
    assert invitation.recipients == ["paula@calserver.example"]
    assert invitation.subject == "Ihr calmail-Passwort festlegen"
    [link] = re.findall(
        rf"{re.escape(live_server.url)}/accounts/password/set/\S+/", plain_body(invitation)
    )
    assert OutboxMessage.objects.get(to=["paula@calserver.example"]).status == "sent"

    # The power user follows the link, sets a password and signs in.
    page.click("#user-menu")
    submit(page, "[data-testid=logout]")
    page.goto(link)
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    submit(page, "main form button[type=submit]")
    with page.expect_navigation():
        page.click("[data-testid=to-login]")
    page.fill("input[name=username]", "paula")
    page.fill("input[name=password]", NEW_PASSWORD)
    submit(page, "form[action='/accounts/login/'] button[type=submit]")
    expect(page.locator("#user-menu")).to_contain_text("Paula Peters")

    # A template: the team is preselected, she is in exactly one.
    page.goto(f"{live_server.url}/templates/new/")
    page.fill("input[name=name]", "Kalibriererinnerung")
    page.fill("input[name=subject_de]", "Erinnerung an die Kalibrierung")
    page.fill(
        "textarea[name=body_html_de]", "<p>Guten Tag, bitte denken Sie an die Kalibrierung.</p>"
    )
    submit(page)

    # An action on the default configuration, run now.
    page.goto(f"{live_server.url}/actions/new/")
    expect(page.locator("select[name=smtp_configuration]")).to_have_value(str(configuration.pk))
    page.fill("input[name=description]", "Monatliche Erinnerung")
    page.fill("input[name=time_of_day]", "07:00")
    page.fill("input[name=start]", "2026-01-01T00:00")
    # A typed address becomes a chip of the recipient picker.
    page.fill("#id_recipients_search", "einkauf@muster.example")
    page.press("#id_recipients_search", "Enter")
    page.select_option("select[name=template]", label="Kalibriererinnerung")
    submit(page, "input[name=submit]")
    action = Action.objects.get()
    assert action.group.name == "Labor Nord"
    assert action.template.owner_group.name == "Labor Nord"

    page.goto(f"{live_server.url}/actions/{action.pk}/run-now/")
    submit(page, "main form button[type=submit]")
    # What the worker's tasks run, here in the test process.
    action_runs.run_execute(run_id=ActionRun.objects.get().pk)
    deliver_due(configuration_id=configuration.pk, worker_id="test")

    page.goto(f"{live_server.url}/outbox/")
    row = page.locator("tbody tr", has_text="einkauf@muster.example")
    expect(row).to_contain_text("gesendet")
    assert [m.recipients for m in smtp_server.messages][-1] == ["einkauf@muster.example"]
    assert smtp_server.messages[-1].subject == "Erinnerung an die Kalibrierung"
    # She sees her team's mail, not the administrator's set-password mail.
    expect(page.locator("table")).not_to_contain_text("paula@calserver.example")

    assert get_user_model().objects.get(username="paula").groups.filter(name="Labor Nord").exists()
    assert not [url for url in requested if "/admin/" in url]
