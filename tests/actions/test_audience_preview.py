"""The action form's live audience preview (actions:audience_preview): who may ask, what
the fragment shows, and what it costs."""

import datetime as dt
import html
from html.parser import HTMLParser

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from actions.models import ReportScope
from calmail.common.roles import POWER_USER
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    MailTemplateFactory,
    SmtpConfigurationFactory,
    SystemAddressFactory,
    UserFactory,
)

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 3, 2)
MATCHING = "audience:matching_customers"
ACTIVE = "audience:active_customers"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def teammate(power_user, team):
    power_user.groups.add(team)
    return power_user


@pytest.fixture
def stranger(db):
    """A power user of another team."""
    user = UserFactory(username="fremd", roles=[POWER_USER])
    user.groups.add(Group.objects.create(name="Andere"))
    return user


@pytest.fixture
def template(team):
    return MailTemplateFactory(name="Fällige Prüfmittel", owner_group=team)


def overdue(customer, count=1):
    for _index in range(count):
        InstrumentFactory(customer=customer, last_calibration=TODAY - dt.timedelta(days=400))


@pytest.fixture
def three(db):
    """Customer 6001 with two overdue instruments, 6002 with one, 6003 with none due."""
    customers = [
        CustomerFactory(number=number, emails=[f"labor@k{number}.example"])
        for number in ("6001", "6002", "6003")
    ]
    overdue(customers[0], count=2)
    overdue(customers[1])
    InstrumentFactory(customer=customers[2], last_calibration=TODAY - dt.timedelta(days=30))
    return customers


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def values(template, /, **overrides):
    """What actions.js posts: the whole action form."""
    data = {
        "description": "Monatliche Erinnerung",
        "days": ["1"],
        "time_of_day": "07:00",
        "start": "2026-01-01T00:00",
        "recipients": MATCHING,
        "template": template.pk,
        "report_scope": ReportScope.NONE,
    }
    data.update(overrides)
    return data


class Fragment(HTMLParser):
    """The fragment's figures: the mails line, the recipients table's rows (cell texts),
    the skipped and problem lists (item texts)."""

    def __init__(self, markup):
        super().__init__()
        self.mails = None
        self.rows: list[list[str]] = []
        self.skipped: list[str] = []
        self.problems: list[str] = []
        self.texts: list[str] = []
        self._list = None
        self._cell = None
        self._in_body = False
        self.feed(markup)
        self.text = " ".join(" ".join(self.texts).split())
        self.skipped = [" ".join(item.split()) for item in self.skipped]
        self.problems = [" ".join(item.split()) for item in self.problems]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-audience-mails" in attrs:
            self.mails = int(attrs["data-audience-mails"])
        if "data-audience-skipped" in attrs:
            self._list = self.skipped
        if "data-audience-problems" in attrs:
            self._list = self.problems
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "li" and self._list is not None:
            self._list.append("")

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "ul":
            self._list = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)
        elif self._list is not None and self._list:
            self._list[-1] += data


def new_url():
    return reverse("actions:audience_preview")


def preview(client, data, url=None):
    response = client.post(url or new_url(), data)
    assert response.status_code == 200
    return Fragment(response.content.decode())


# --- content ------------------------------------------------------------------------------


def test_preview_shows_mails_and_the_recipients_with_their_rows(
    client_for, teammate, template, three
):
    client = english(client_for(teammate))

    fragment = preview(client, values(template))

    assert fragment.mails == 2
    assert "Next run: 2 mails" in fragment.text
    # The rule's next slot (1 April, 07:00) is the run's day.
    assert "Counted for a run on Wednesday, April 1, 2026 with today's records." in fragment.text
    assert fragment.rows == [
        ["labor@k6001.example", three[0].label, "2"],
        ["labor@k6002.example", three[1].label, "1"],
    ]
    assert fragment.skipped == []
    assert "“Fällige Prüfmittel” attaches its report; “Send without attachments” is off" in (
        fragment.text
    )


def test_preview_lists_who_is_skipped_and_why(client_for, teammate, template, three):
    silent = CustomerFactory(number="6004", emails=[])
    overdue(silent)
    client = english(client_for(teammate))

    fragment = preview(client, values(template, recipients=f"{ACTIVE}, ops@example.com"))

    assert fragment.mails == 2
    assert [row[0] for row in fragment.rows] == ["labor@k6001.example", "labor@k6002.example"]
    assert fragment.skipped == [
        f"{silent.label}: the customer has no contact e-mail address",
        "labor@k6003.example: not sent without an attachment: "
        "The report is empty and the template attaches no empty report.",
        "ops@example.com: not sent without an attachment: "
        "There is no report for this recipient (report scope: no report).",
    ]
    assert "3 recipients get no mail" in fragment.text


def test_preview_sends_without_attachments_when_switched_on(client_for, teammate, template, three):
    client = english(client_for(teammate))

    fragment = preview(
        client,
        values(
            template,
            recipients=f"{ACTIVE}, ops@example.com",
            send_without_attachments="on",
        ),
    )

    assert fragment.mails == 4
    assert fragment.rows[-2:] == [
        ["labor@k6003.example", three[2].label, "0"],
        ["ops@example.com", "—", "0"],
    ]
    assert "“Send without attachments” is on" in fragment.text


def test_preview_counts_the_chosen_customers_rows_for_other_addresses(
    client_for, teammate, template, three
):
    client = english(client_for(teammate))

    fragment = preview(
        client,
        values(
            template,
            recipients="ops@example.com",
            report_scope=ReportScope.CUSTOMERS,
            report_scope_customers=[three[0].pk, three[1].pk],
        ),
    )

    assert (fragment.mails, [row[-1] for row in fragment.rows]) == (1, ["3"])


def test_preview_lists_the_first_twenty_and_counts_the_rest(client_for, teammate, template):
    for number in range(23):
        overdue(CustomerFactory(number=f"7{number:03d}", emails=[f"a@k{number}.example"]))
    client = english(client_for(teammate))

    fragment = preview(client, values(template))

    assert (fragment.mails, len(fragment.rows)) == (23, 20)
    assert "… and 3 more" in fragment.text


def test_preview_of_a_template_without_attachment_says_every_recipient_gets_it(
    client_for, teammate, team, three
):
    plain = MailTemplateFactory(name="Hinweis", owner_group=team, report="", add_attachment="none")
    client = english(client_for(teammate))

    fragment = preview(client, values(plain, recipients=f"customer:{three[2].pk}"))

    assert fragment.mails == 1
    assert fragment.rows == [["labor@k6003.example", three[2].label]]
    assert "“Hinweis” attaches no report, so every recipient gets the mail" in fragment.text


def test_preview_takes_today_when_the_rule_gives_no_further_run(
    client_for, teammate, template, three
):
    client = english(client_for(teammate))

    fragment = preview(client, values(template, start="", end=""))

    assert "Counted for a run on Monday, March 2, 2026" in fragment.text


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"recipients": ""}, "Choose recipients and a template to see who the next run reaches."),
        ({"template": ""}, "Choose recipients and a template to see who the next run reaches."),
        ({"recipients": "user:abc"}, "“user:abc”: after “user:” a number is expected."),
        ({"recipients": "audience:everyone"}, "“audience:everyone” is not a known audience."),
        ({"recipients": "customer:999999"}, "The recipient customer:999999 does not exist or is not available to you."),
        ({"template": "999999"}, "The chosen template does not exist or is not available to you."),
        ({"template": "x"}, "The chosen template does not exist or is not available to you."),
        (
            {"report_scope": ReportScope.CUSTOMERS, "report_scope_customers": ["999999"]},
            "A chosen customer of the report does not exist or is not available to you.",
        ),
        (
            {"report_scope": ReportScope.CUSTOMERS},
            "Choose at least one customer: the report covers the chosen customers' records.",
        ),
        ({"report_scope": "everything"}, "Select a valid choice. everything is not one of the available choices."),
    ],
)  # fmt: skip
def test_preview_explains_bad_input_instead_of_failing(
    client_for, teammate, template, three, overrides, problem
):
    client = english(client_for(teammate))

    fragment = preview(client, values(template, **overrides))

    assert (fragment.problems, fragment.mails) == ([problem], None)


def test_preview_refuses_all_customers_to_a_power_user(client_for, teammate, template, three):
    client = english(client_for(teammate))

    fragment = preview(
        client, values(template, recipients="ops@example.com", report_scope=ReportScope.ALL)
    )

    assert fragment.mails is None
    assert fragment.problems[0].startswith("Only administrators may choose")


def test_preview_is_german_on_a_german_page(client_for, teammate, template, three):
    response = client_for(teammate).post(new_url(), values(template))

    assert response.headers["Content-Language"] == "de"
    assert "Mittwoch, 1. April 2026" in response.content.decode()


# --- who may ask --------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_login(client, template, three):
    response = client.post(new_url(), values(template))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert b"labor@" not in response.content


@pytest.mark.parametrize("who", ["viewer", "outsider"])
def test_users_who_may_not_add_actions_get_403(client_for, request, team, template, three, who):
    user = request.getfixturevalue(who)
    user.groups.add(team)

    response = client_for(user).post(new_url(), values(template))

    assert response.status_code == 403
    assert b"labor@" not in response.content


def test_get_is_not_allowed(client_for, teammate):
    assert client_for(teammate).get(new_url()).status_code == 405


def test_post_without_csrf_token_is_refused(teammate, template, three):
    client = Client(enforce_csrf_checks=True)
    client.force_login(teammate)

    response = client.post(new_url(), values(template))

    assert response.status_code == 403
    assert b"labor@" not in response.content


def test_post_with_the_forms_csrf_token_in_header_is_accepted(teammate, template, three):
    client = Client(enforce_csrf_checks=True)
    client.force_login(teammate)
    form = client.get(reverse("actions:create"))
    token = form.cookies["csrftoken"].value

    response = client.post(new_url(), values(template), headers={"X-CSRFToken": token})

    assert Fragment(response.content.decode()).mails == 2


def test_power_user_of_another_team_cannot_use_this_teams_template(
    client_for, stranger, template, three
):
    client = english(client_for(stranger))

    fragment = preview(client, values(template))
    missing = preview(client, values(template, template="999999"))

    # The same words whether the template exists or not: nothing is learnt.
    assert (
        fragment.problems
        == missing.problems
        == ["The chosen template does not exist or is not available to you."]
    )
    assert "labor@" not in fragment.text


def test_power_user_of_another_team_gets_404_for_an_action_of_this_team(
    client_for, stranger, make_action, template, three
):
    action = make_action(template=template, recipients=[MATCHING])

    response = client_for(stranger).post(
        reverse("actions:audience_preview", args=[action.pk]), values(template)
    )

    assert response.status_code == 404
    assert b"labor@" not in response.content


def test_viewer_of_the_team_gets_403_for_its_action(
    client_for, viewer, team, make_action, template
):
    viewer.groups.add(team)
    action = make_action(template=template, recipients=[MATCHING])

    response = client_for(viewer).post(
        reverse("actions:audience_preview", args=[action.pk]), values(template)
    )

    assert response.status_code == 403


def test_teammate_previews_an_action_being_edited(
    client_for, teammate, make_action, template, three
):
    action = make_action(template=template, recipients=[MATCHING])
    client = english(client_for(teammate))

    fragment = preview(
        client, values(template), url=reverse("actions:audience_preview", args=[action.pk])
    )

    assert fragment.mails == 2


def test_administrator_may_preview_all_customers_for_a_system_address(
    client_for, admin, template, three
):
    system = SystemAddressFactory(email="qm@calserver.example")
    client = english(client_for(admin))

    fragment = preview(
        client, values(template, recipients=f"system:{system.pk}", report_scope=ReportScope.ALL)
    )

    assert fragment.rows == [["qm@calserver.example", system.name, "3"]]


def test_power_user_keeps_the_all_customers_scope_an_administrator_gave_the_action(
    client_for, teammate, make_action, template, three
):
    system = SystemAddressFactory(email="qm@calserver.example")
    action = make_action(
        template=template, recipients=[f"system:{system.pk}"], report_scope=ReportScope.ALL
    )
    data = values(template, recipients=f"system:{system.pk}", report_scope=ReportScope.ALL)

    fragment = preview(
        client_for(teammate), data, url=reverse("actions:audience_preview", args=[action.pk])
    )

    assert fragment.mails == 1


# --- the form page ------------------------------------------------------------------------


def test_form_page_holds_the_preview_box_and_offers_audiences(client_for, teammate):
    response = client_for(teammate).get(reverse("actions:create"))

    page = response.content.decode()
    assert f'data-audience-preview-url="{new_url()}"' in page
    assert 'data-recipient-picker="/inventory/recipients/search/"' in page
    assert "data-audiences" in page
    assert 'data-shown-for-scope="customers"' in page


def test_form_page_describes_a_stored_audience_chip(client_for, teammate, make_action, template):
    action = make_action(template=template, recipients=[MATCHING])

    response = english(client_for(teammate)).get(reverse("actions:update", args=[action.pk]))

    picker = html.unescape(str(response.context["form"]["recipients"]))
    assert '"label": "Customers with matching records"' in picker
    assert '"kind_label": "Audience"' in picker
    assert (
        f'data-audience-preview-url="{reverse("actions:audience_preview", args=[action.pk])}"'
        in response.content.decode()
    )


def test_show_next_runs_button_also_shows_the_audience_without_javascript(
    client_for, teammate, team, template, three
):
    data = values(template, group=team.pk, smtp_configuration=SmtpConfigurationFactory().pk)
    data["preview"] = "1"

    response = english(client_for(teammate)).post(reverse("actions:create"), data)

    fragment = Fragment(response.content.decode())
    assert fragment.mails == 2
    assert [row[0] for row in fragment.rows] == ["labor@k6001.example", "labor@k6002.example"]


def test_compose_picker_offers_no_audiences(client_for, admin):
    response = client_for(admin).get(reverse("compose:new"))

    page = response.content.decode()
    assert 'data-recipient-picker="/inventory/recipients/search/"' in page
    assert "data-audiences" not in page


# --- cost ---------------------------------------------------------------------------------


def test_preview_queries_do_not_grow_with_the_audience(
    client_for, teammate, template, django_assert_max_num_queries
):
    for number in range(60):
        overdue(CustomerFactory(number=f"8{number:03d}", emails=[f"a@k{number}.example"]))
    client = client_for(teammate)
    client.post(new_url(), values(template))  # session and permission caches warm

    # Session, user, permissions and role checks, the template, the audiences, one COUNT.
    with django_assert_max_num_queries(16) as captured:
        fragment = preview(client, values(template, recipients=f"{MATCHING}, {ACTIVE}"))

    assert fragment.mails == 60
    small = len(captured.captured_queries)
    for number in range(60, 63):
        overdue(CustomerFactory(number=f"8{number:03d}", emails=[f"a@k{number}.example"]))
    with django_assert_max_num_queries(small):
        preview(client, values(template, recipients=f"{MATCHING}, {ACTIVE}"))
