import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from smtpconfig.models import SmtpConfiguration
from tests.csv_export import read_csv
from tests.factories import SmtpConfigurationFactory

SECRET = "Geheim-123!"


def form_data(**overrides):
    data = {
        "name": "Hauptserver",
        "mailer": "smtp",
        "host": "mail.example.com",
        "port": "587",
        "security": "starttls",
        "verify_certificate": "on",
        "timeout": "10",
        "smtp_auth": "on",
        "username": "mailer",
        "password": SECRET,
        "sendmail_path": "",
        "from_email": "kalibrierlabor@example.com",
        "rate_limit_per_minute": "",
        "rate_limit_per_hour": "",
        "max_connections": "5",
        "max_messages_per_connection": "100",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def page_text(response) -> str:
    return response.content.decode()


# --- permissions -------------------------------------------------------------------------

OBJECT_URLS = ["detail", "update", "duplicate", "set_default", "test", "test_mail", "delete"]
ADMIN_ONLY = ["create", "update", "duplicate", "set_default", "test", "test_mail", "delete"]


def url_for(name, pk):
    if name in ("list", "create"):
        return reverse(f"smtpconfig:{name}")
    return reverse(f"smtpconfig:{name}", args=[pk])


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_smtp_views_anonymous_redirected_to_login(client, name):
    configuration = SmtpConfigurationFactory()

    response = client.get(url_for(name, configuration.pk))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_smtp_views_outsider_never_sees_a_configuration(client_for, outsider, name):
    configuration = SmtpConfigurationFactory(name="Geheimer Server", host="secret-host.example.com")

    response = client_for(outsider).get(url_for(name, configuration.pk))

    assert response.status_code == 403
    assert "Geheimer Server" not in page_text(response)
    assert "secret-host" not in page_text(response)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_smtp_views_read_only_roles_see_list_and_detail_only(client_for, request, role):
    user = request.getfixturevalue(role)
    configuration = SmtpConfigurationFactory(
        name="Sichtbar", password=SECRET, smtp_auth=True, username="u"
    )
    client = client_for(user)

    listing = client.get(url_for("list", configuration.pk))
    detail = client.get(url_for("detail", configuration.pk))
    forbidden = {
        name: client.get(url_for(name, configuration.pk)).status_code for name in ADMIN_ONLY
    }

    assert listing.status_code == 200 and "Sichtbar" in page_text(listing)
    assert detail.status_code == 200 and "Sichtbar" in page_text(detail)
    assert SECRET not in page_text(listing) + page_text(detail)
    assert forbidden == dict.fromkeys(ADMIN_ONLY, 403)
    # Read-only users get no row menu entries that lead to forbidden pages.
    assert reverse("smtpconfig:update", args=[configuration.pk]) not in page_text(listing)


@pytest.mark.django_db
def test_smtp_views_viewer_cannot_post_changes(client_for, viewer):
    configuration = SmtpConfigurationFactory(name="Unverändert")
    client = client_for(viewer)

    update = client.post(url_for("update", configuration.pk), form_data(name="Verändert"))
    delete = client.post(url_for("delete", configuration.pk))

    assert (update.status_code, delete.status_code) == (403, 403)
    assert list(SmtpConfiguration.objects.values_list("name", flat=True)) == ["Unverändert"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_smtp_views_administrator_opens_every_page(client_for, admin, name):
    configuration = SmtpConfigurationFactory(name="Erreichbar", is_default=True)

    response = client_for(admin).get(url_for(name, configuration.pk))

    assert response.status_code == 200
    assert "Erreichbar" in page_text(response) or name == "create"


@pytest.mark.django_db
def test_smtp_views_unknown_configuration_is_404(client_for, admin):
    response = client_for(admin).get(reverse("smtpconfig:detail", args=[999]))

    assert response.status_code == 404


# --- create / update ------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_stores_encrypted_password_and_first_becomes_default(client_for, admin):
    response = client_for(admin).post(reverse("smtpconfig:create"), form_data())

    configuration = SmtpConfiguration.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("smtpconfig:detail", args=[configuration.pk])
    assert configuration.password == SECRET
    assert configuration.is_default is True
    assert (configuration.host, configuration.username, configuration.security) == (
        "mail.example.com",
        "mailer",
        "starttls",
    )


@pytest.mark.django_db
def test_create_second_configuration_is_not_default_unless_asked(client_for, admin):
    first = SmtpConfigurationFactory(is_default=True)
    client = client_for(admin)

    client.post(reverse("smtpconfig:create"), form_data(name="Zweiter"))
    client.post(reverse("smtpconfig:create"), form_data(name="Dritter", make_default="on"))

    defaults = list(
        SmtpConfiguration.objects.filter(is_default=True).values_list("name", flat=True)
    )
    assert defaults == ["Dritter"]
    first.refresh_from_db()
    assert first.is_default is False


@pytest.mark.django_db
def test_update_blank_password_keeps_the_stored_one(client_for, admin):
    configuration = SmtpConfigurationFactory(smtp_auth=True, username="mailer", password=SECRET)

    response = client_for(admin).post(
        reverse("smtpconfig:update", args=[configuration.pk]),
        form_data(name="Umbenannt", password=""),
    )

    configuration.refresh_from_db()
    assert response.status_code == 302
    assert (configuration.name, configuration.password) == ("Umbenannt", SECRET)


@pytest.mark.django_db
def test_update_new_password_replaces_and_clear_removes(client_for, admin):
    configuration = SmtpConfigurationFactory(smtp_auth=True, username="mailer", password=SECRET)
    client = client_for(admin)
    url = reverse("smtpconfig:update", args=[configuration.pk])

    client.post(url, form_data(password="Neu-456"))
    configuration.refresh_from_db()
    replaced = configuration.password
    client.post(url, form_data(password="", smtp_auth=None, clear_password="on"))
    configuration.refresh_from_db()

    assert replaced == "Neu-456"
    assert configuration.password == ""


@pytest.mark.django_db
def test_update_clearing_password_while_auth_is_on_is_refused(client_for, admin):
    configuration = SmtpConfigurationFactory(smtp_auth=True, username="mailer", password=SECRET)

    response = english(client_for(admin)).post(
        reverse("smtpconfig:update", args=[configuration.pk]),
        form_data(password="", clear_password="on"),
    )

    configuration.refresh_from_db()
    assert response.status_code == 200
    assert "SMTP auth needs a password." in page_text(response)
    assert configuration.password == SECRET


@pytest.mark.django_db
def test_edit_page_never_renders_the_password(client_for, admin):
    configuration = SmtpConfigurationFactory(smtp_auth=True, username="mailer", password=SECRET)

    response = english(client_for(admin)).get(reverse("smtpconfig:update", args=[configuration.pk]))

    assert SECRET not in page_text(response)
    assert "Leave blank to keep it" in page_text(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"port": "0"}, "port", "greater than or equal to 1"),
        ({"port": "65536"}, "port", "less than or equal to 65535"),
        ({"timeout": "0"}, "timeout", "greater than or equal to 1"),
        ({"timeout": "301"}, "timeout", "less than or equal to 300"),
        ({"username": ""}, "username", "SMTP auth needs a username."),
        ({"password": ""}, "password", "SMTP auth needs a password."),
        ({"host": ""}, "host", "Enter the host name of the SMTP server."),
        (
            {"mailer": "sendmail", "sendmail_path": "/nonexistent/sendmail"},
            "sendmail_path",
            "does not exist or is not executable",
        ),
        (
            {"mailer": "sendmail", "sendmail_path": "sendmail"},
            "sendmail_path",
            "Enter an absolute path",
        ),
        ({"security": "tls+ssl"}, "security", "Select a valid choice"),
        (
            {"rate_limit_per_minute": "100", "rate_limit_per_hour": "50"},
            "rate_limit_per_minute",
            "cannot exceed the per-hour limit",
        ),
    ],
)
def test_create_invalid_input_gets_a_clear_message(client_for, admin, overrides, field, message):
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.post(reverse("smtpconfig:create"), form_data(**overrides))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors
    assert message in " ".join(errors[field])
    assert SmtpConfiguration.objects.count() == 0
    # What was typed survives (the password excepted, which is never sent back).
    assert 'value="Hauptserver"' in page_text(response)


@pytest.mark.django_db
def test_create_sendmail_with_existing_binary(client_for, admin, tmp_path):
    binary = tmp_path / "sendmail"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)

    client_for(admin).post(
        reverse("smtpconfig:create"),
        form_data(
            mailer="sendmail", sendmail_path=str(binary), host="", smtp_auth=None, password=""
        ),
    )

    configuration = SmtpConfiguration.objects.get()
    assert (configuration.mailer, configuration.sendmail_path) == ("sendmail", str(binary))


# --- default, duplicate, delete -------------------------------------------------------------


@pytest.mark.django_db
def test_set_default_switches_atomically(client_for, admin):
    old = SmtpConfigurationFactory(is_default=True)
    new = SmtpConfigurationFactory()

    client_for(admin).post(reverse("smtpconfig:set_default", args=[new.pk]))

    assert list(SmtpConfiguration.objects.filter(is_default=True)) == [new]
    old.refresh_from_db()
    assert old.is_default is False


@pytest.mark.django_db
def test_duplicate_copies_all_but_default_and_password_unless_asked(client_for, admin):
    original = SmtpConfigurationFactory(
        name="Labor",
        is_default=True,
        smtp_auth=True,
        username="mailer",
        password=SECRET,
        rate_limit_per_minute=30,
        max_connections=4,
        verify_certificate=False,
    )
    client = client_for(admin)

    without = client.post(
        reverse("smtpconfig:duplicate", args=[original.pk]),
        {"name": "Labor (Kopie)", "password": "Anderes-1"},
    )
    with_password = client.post(
        reverse("smtpconfig:duplicate", args=[original.pk]),
        {"name": "Labor (Kopie 2)", "copy_password": "on"},
    )

    copy1 = SmtpConfiguration.objects.get(name="Labor (Kopie)")
    copy2 = SmtpConfiguration.objects.get(name="Labor (Kopie 2)")
    assert (without.status_code, with_password.status_code) == (302, 302)
    assert (copy1.is_default, copy2.is_default) == (False, False)
    assert (copy1.password, copy2.password) == ("Anderes-1", SECRET)
    for copy in (copy1, copy2):
        assert (
            copy.host,
            copy.username,
            copy.rate_limit_per_minute,
            copy.max_connections,
            copy.verify_certificate,
        ) == (
            original.host,
            "mailer",
            30,
            4,
            False,
        )


@pytest.mark.django_db
def test_duplicate_without_password_for_auth_configuration_asks_for_one(client_for, admin):
    original = SmtpConfigurationFactory(
        name="Labor", smtp_auth=True, username="mailer", password=SECRET
    )

    response = english(client_for(admin)).post(
        reverse("smtpconfig:duplicate", args=[original.pk]), {"name": "Labor 2"}
    )

    assert response.status_code == 200
    assert "SMTP auth needs a password." in page_text(response)
    assert SmtpConfiguration.objects.count() == 1


@pytest.mark.django_db
def test_duplicate_page_proposes_copy_name(client_for, admin):
    original = SmtpConfigurationFactory(name="Labor")
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.get(reverse("smtpconfig:duplicate", args=[original.pk]))

    assert response.context["form"].initial["name"] == "Labor (copy)"


@pytest.mark.django_db
def test_delete_default_requires_successor(client_for, admin):
    default = SmtpConfigurationFactory(is_default=True)
    other = SmtpConfigurationFactory()
    client = client_for(admin)
    url = reverse("smtpconfig:delete", args=[default.pk])

    refused = client.post(url, {})
    accepted = client.post(url, {"successor": other.pk})

    assert refused.status_code == 200
    assert "successor" in refused.context["form"].errors
    assert accepted.status_code == 302
    assert list(SmtpConfiguration.objects.all()) == [other]
    other.refresh_from_db()
    assert other.is_default is True


@pytest.mark.django_db
def test_delete_the_only_configuration(client_for, admin):
    only = SmtpConfigurationFactory(is_default=True)

    response = client_for(admin).post(reverse("smtpconfig:delete", args=[only.pk]))

    assert response.status_code == 302
    assert SmtpConfiguration.objects.count() == 0


@pytest.mark.django_db
def test_bulk_delete_confirms_then_deletes_and_explains_refusal(client_for, admin):
    default = SmtpConfigurationFactory(name="Standard", is_default=True)
    a = SmtpConfigurationFactory(name="A")
    b = SmtpConfigurationFactory(name="B")
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})
    selection = [default.pk, a.pk, b.pk]

    confirm_page = client.post(
        reverse("smtpconfig:bulk"), {"action": "delete", "selection": selection}
    )
    still_there = SmtpConfiguration.objects.count()
    done = client.post(
        reverse("smtpconfig:bulk"),
        {"action": "delete", "selection": selection, "confirm": "1"},
        follow=True,
    )

    assert still_there == 3
    assert "it is the default" in page_text(confirm_page)
    assert list(SmtpConfiguration.objects.values_list("name", flat=True)) == ["Standard"]
    assert "2 configurations deleted." in page_text(done)
    assert "Standard was left out" in page_text(done)


@pytest.mark.django_db
def test_bulk_delete_forbidden_for_viewer(client_for, viewer):
    configuration = SmtpConfigurationFactory()

    response = client_for(viewer).post(
        reverse("smtpconfig:bulk"),
        {"action": "delete", "selection": [configuration.pk], "confirm": "1"},
    )

    assert response.status_code == 403
    assert SmtpConfiguration.objects.count() == 1


# --- list: filters, sorting, export, queries ---------------------------------------------------


@pytest.fixture
def three_configurations(db):
    return [
        SmtpConfigurationFactory(
            name="Alpha",
            host="alpha.example.com",
            port=25,
            security="none",
            timeout=5,
            smtp_auth=False,
            is_default=True,
        ),
        SmtpConfigurationFactory(
            name="Beta",
            host="beta.example.org",
            port=465,
            security="ssl",
            timeout=30,
            smtp_auth=True,
            username="beta-user",
            password=SECRET,
        ),
        SmtpConfigurationFactory(
            name="Gamma",
            mailer="sendmail",
            host="",
            sendmail_path="/usr/sbin/sendmail",
            port=587,
            security="starttls",
            timeout=60,
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"is_default": "yes"}, ["Alpha"]),
        ({"is_default": "no"}, ["Beta", "Gamma"]),
        ({"host": "example.org"}, ["Beta"]),
        ({"mailer": "sendmail"}, ["Gamma"]),
        ({"name": "amm"}, ["Gamma"]),
        ({"has_password": "yes"}, ["Beta"]),
        ({"has_password": "no"}, ["Alpha", "Gamma"]),
        ({"port_min": "100", "port_max": "500"}, ["Beta"]),
        ({"sendmail_path": "sbin"}, ["Gamma"]),
        ({"smtp_auth": "yes"}, ["Beta"]),
        ({"security": "ssl"}, ["Beta"]),
        ({"timeout_min": "10"}, ["Beta", "Gamma"]),
        ({"username": "beta"}, ["Beta"]),
        ({"q": "alpha"}, ["Alpha"]),
    ],
)
def test_list_each_filter_narrows_rows(client_for, admin, three_configurations, query, expected):
    response = client_for(admin).get(reverse("smtpconfig:list"), query)

    names = [row.record.name for row in response.context["table"].page.object_list]
    assert names == expected


@pytest.mark.django_db
def test_list_id_filter(client_for, admin, three_configurations):
    beta = three_configurations[1]

    response = client_for(admin).get(reverse("smtpconfig:list"), {"id": beta.pk})

    assert [row.record.name for row in response.context["table"].page.object_list] == ["Beta"]


@pytest.mark.django_db
def test_list_sorting_by_port_descending(client_for, admin, three_configurations):
    response = client_for(admin).get(reverse("smtpconfig:list"), {"sort": "-port"})

    assert [row.record.port for row in response.context["table"].page.object_list] == [587, 465, 25]


@pytest.mark.django_db
def test_list_page_size_is_capped(client_for, admin, settings, three_configurations):
    settings.CALMAIL_MAX_PAGE_SIZE = 2

    response = client_for(admin).get(reverse("smtpconfig:list"), {"per_page": "100000"})

    assert response.context["table"].paginator.per_page == 2
    assert len(response.context["table"].page.object_list) == 2


@pytest.mark.django_db
def test_list_invalid_filter_shows_error_and_no_rows(client_for, admin, three_configurations):
    response = client_for(admin).get(reverse("smtpconfig:list"), {"port_min": "abc"})

    assert list(response.context["table"].page.object_list) == []
    assert "port" in response.context["filter"].form.errors


def export_csv(client, query=None):
    response = client.get(reverse("smtpconfig:list"), {**(query or {}), "_export": "csv"})
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()
    return response, read_csv(content)


@pytest.mark.django_db
def test_list_export_csv_has_every_visible_column_and_no_password(
    client_for, admin, three_configurations
):
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    response, rows = export_csv(client, {"security": "ssl"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert rows[0] == [
        "Default",
        "Host",
        "ID",
        "Mailer",
        "Name",
        "Password",
        "Port",
        "Sendmail",
        "SMTP auth",
        "SMTP secure",
        "Timeout",
        "Username",
    ]
    assert rows[1:] == [
        [
            "no",
            "beta.example.org",
            str(three_configurations[1].pk),
            "smtp",
            "Beta",
            "set",
            "465",
            "",
            "yes",
            "SSL/TLS",
            "30",
            "beta-user",
        ],
    ]
    assert SECRET not in str(rows)


@pytest.mark.django_db
def test_list_export_neutralises_spreadsheet_formulas(client_for, admin):
    SmtpConfigurationFactory(
        name='=HYPERLINK("http://evil")', host="@host", username="+1", is_default=True
    )

    _response, rows = export_csv(client_for(admin))

    assert rows[1][4] == '\'=HYPERLINK("http://evil")'
    assert rows[1][1] == "'@host"


@pytest.mark.django_db
def test_list_export_xlsx_readable_with_rows(client_for, admin, three_configurations):
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.get(reverse("smtpconfig:list"), {"_export": "xlsx", "sort": "name"})
    content = b"".join(response.streaming_content)
    response.close()

    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:6] == ["Default", "Host", "ID", "Mailer", "Name", "Password"]
    assert [row[4] for row in values[1:]] == ["Alpha", "Beta", "Gamma"]
    assert SECRET not in str(values)


@pytest.mark.django_db
def test_list_query_count_does_not_grow_with_rows(client_for, admin, django_assert_num_queries):
    client = client_for(admin)
    SmtpConfigurationFactory(is_default=True)
    client.get(reverse("smtpconfig:list"))  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as one_row:
        client.get(reverse("smtpconfig:list"))
    SmtpConfigurationFactory.create_batch(2)

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(reverse("smtpconfig:list"))

    assert len(response.context["table"].page.object_list) == 3


@pytest.mark.django_db
def test_list_sorting_by_password_set(client_for, admin, three_configurations):
    response = client_for(admin).get(reverse("smtpconfig:list"), {"sort": "-password"})

    assert [row.record.name for row in response.context["table"].page.object_list] == [
        "Beta",
        "Alpha",
        "Gamma",
    ]


@pytest.mark.django_db
def test_django_admin_never_shows_the_password(client, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    configuration = SmtpConfigurationFactory(smtp_auth=True, username="mailer", password=SECRET)
    client.force_login(superuser)

    change_page = client.get(f"/admin/smtpconfig/smtpconfiguration/{configuration.pk}/change/")

    assert change_page.status_code == 200
    assert "mailer" in page_text(change_page)
    assert SECRET not in page_text(change_page)
    assert 'name="password"' not in page_text(change_page)


@pytest.mark.django_db
def test_list_sorting_ties_are_broken_by_id(client_for, admin):
    for name in ("C", "A", "B"):
        SmtpConfigurationFactory(name=name, port=25)
    client = client_for(admin)

    ascending = client.get(reverse("smtpconfig:list"), {"sort": "port"})
    descending = client.get(reverse("smtpconfig:list"), {"sort": "-port"})

    ids = sorted(SmtpConfiguration.objects.values_list("pk", flat=True))
    assert [r.record.pk for r in ascending.context["table"].page.object_list] == ids
    assert [r.record.pk for r in descending.context["table"].page.object_list] == ids[::-1]
