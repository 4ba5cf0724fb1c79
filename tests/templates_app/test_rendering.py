import datetime

import pytest
from django.conf import settings
from django.utils.safestring import mark_safe

from templates_app import rendering
from templates_app.placeholders import placeholder_names
from tests.factories import CustomerFactory

NAMES = placeholder_names("inventory")
DATA = {
    "recipient": {"name": "Muster GmbH", "email": "einkauf@muster.example"},
    "rows": [{"inventory_number": "INV-1"}, {"inventory_number": "INV-2"}],
    "count": 2,
    "today": datetime.date(2025, 3, 3),
}


def check(source: str) -> list[str]:
    return rendering.check_template(source, placeholders=NAMES)


# --- refused on save ------------------------------------------------------------------------


def test_check_refuses_settings_as_unknown_placeholder():
    assert check("Hallo\n{{ settings.SECRET_KEY }}") == [
        "Line 2: “settings” is not a placeholder of this template type."
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% load static %}", "Line 1: the tag {% load %} is not available in templates."),
        ("a\nb\n{% load log %}", "Line 3: the tag {% load %} is not available in templates."),
        ("{% debug %}", "Line 1: the tag {% debug %} is not available in templates."),
        (
            "{% include 'base.html' %}",
            "Line 1: the tag {% include %} is not available in templates.",
        ),
        (
            "{% extends 'base.html' %}",
            "Line 1: the tag {% extends %} is not available in templates.",
        ),
        (
            "{% autoescape off %}{{ count }}{% endautoescape %}",
            "Line 1: the tag {% autoescape %} is not available in templates.",
        ),
        ("{% url 'admin:index' %}", "Line 1: the tag {% url %} is not available in templates."),
        ("{% csrf_token %}", "Line 1: the tag {% csrf_token %} is not available in templates."),
        ("\n{{ recipient.name|safe }}", "Line 2: the filter “safe” is not available in templates."),
        ("{{ rows|safeseq }}", "Line 1: the filter “safeseq” is not available in templates."),
        ("{{ rows|pprint }}", "Line 1: the filter “pprint” is not available in templates."),
        ("{{ recipient.__class__ }}", "Line 1: names must not begin with an underscore."),
        (
            "{% for row in rows %}\n{{ row._meta }}{% endfor %}",
            "Line 2: names must not begin with an underscore.",
        ),
    ],
)
def test_check_refuses_what_reaches_beyond_the_data(source, message):
    assert check(source) == [message]


def test_check_reports_syntax_errors_with_their_line():
    source = "Guten Tag,\n\n{% if count %}\n{{ count }} Prüfmittel\n{% endfor %}"

    assert check(source) == [
        "Line 5: {% endfor %} found where 'elif', 'else' or 'endif' was expected."
    ]


def test_check_reports_unclosed_tag_with_its_line():
    (message,) = check("eins\nzwei\n{% for row in rows %}{{ row }}")

    assert message.startswith("Line 3: ")
    assert "endfor" in message


def test_check_accepts_variables_the_template_defines():
    source = (
        "{% for row in rows %}{{ forloop.counter }}. {{ row.inventory_number }}{% endfor %}"
        "{% with total=count %}{{ total }}{% endwith %}"
        "{% regroup rows by location as groups %}{% for group in groups %}{{ group.grouper }}{% endfor %}"
        "{% firstof recipient.name 'Kunde' as who %}{{ who }}"
        "{% now 'Y' as year %}{{ year }}"
        "{% if count > 1 and not recipient.email %}{{ today|date:'d.m.Y' }}{% endif %}"
        "{% filter upper %}{{ recipient.name|default:'x' }}{% endfilter %}"
    )

    assert check(source) == []


def test_check_finds_unknown_names_in_tags_and_filter_arguments():
    source = (
        "{% if request.user %}x{% endif %}\n"
        "{% for row in object_list %}{% endfor %}\n"
        "{{ count|default:secret }}"
    )

    assert check(source) == [
        "Line 1: “request” is not a placeholder of this template type.",
        "Line 2: “object_list” is not a placeholder of this template type.",
        "Line 3: “secret” is not a placeholder of this template type.",
    ]


# --- rendering ------------------------------------------------------------------------------


def test_render_reaches_nothing_but_the_data():
    source = (
        "[{{ settings.SECRET_KEY }}][{{ rows.0.delete }}][{{ rows.clear }}]"
        "[{{ recipient.clear }}][{{ csrf_token }}][{{ user }}][{{ request }}]{{ rows|length }}"
    )

    assert rendering.render_text(source, DATA) == "[][][][][][][]2"
    assert settings.SECRET_KEY not in rendering.render_text("{{ settings.SECRET_KEY }}", DATA)


def test_render_does_not_change_the_data():
    data = {"rows": [{"a": 1}, {"a": 2}], "recipient": {"name": "x"}}

    text = rendering.render_text(
        "{{ rows.pop }}{{ rows.reverse }}{{ rows.sort }}{{ recipient.popitem }}{{ rows|length }}",
        data,
    )

    assert text == "2"
    assert data == {"rows": [{"a": 1}, {"a": 2}], "recipient": {"name": "x"}}


@pytest.mark.django_db
def test_render_refuses_model_instances():
    customer = CustomerFactory()

    with pytest.raises(TypeError, match="plain data only"):
        rendering.render_text("{{ customer.delete }}", {"customer": customer})


def test_freeze_refuses_callables_and_drops_safe_marking():
    frozen = rendering.freeze({"name": mark_safe("<b>x</b>"), "rows": [1, 2]})

    assert type(frozen["name"]) is str
    assert frozen["rows"] == (1, 2)
    with pytest.raises(TypeError):
        rendering.freeze({"f": print})


def test_render_html_escapes_data_and_text_does_not():
    data = {"recipient": {"name": '<script>alert("x")</script> & Co'}}

    html = rendering.render_html("<p>{{ recipient.name }}</p>", data)
    text = rendering.render_text("{{ recipient.name }}", data)

    assert html == "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co</p>"
    assert text == '<script>alert("x")</script> & Co'


def test_render_html_escapes_data_marked_safe():
    html = rendering.render_html("{{ name }}", {"name": mark_safe("<script>x</script>")})

    assert html == "&lt;script&gt;x&lt;/script&gt;"


def test_render_subject_is_one_line():
    subject = rendering.render_subject(
        "Fällig:\n{{ count }}\r\nPrüfmittel {{ recipient.name }}",
        {"count": 2, "recipient": {"name": "A\nB"}},
    )

    assert subject == "Fällig: 2 Prüfmittel A B"


def test_render_loop_budget_stops_runaway_templates(monkeypatch):
    monkeypatch.setattr(rendering, "MAX_LOOP_ITERATIONS", 100)
    data = {"rows": list(range(20))}

    assert rendering.render_text("{% for a in rows %}x{% endfor %}", data) == "x" * 20
    with pytest.raises(rendering.TemplateRenderError, match="too many rows"):
        rendering.render_text(
            "{% for a in rows %}{% for b in rows %}{% endfor %}{% endfor %}", data
        )


def test_render_of_a_broken_stored_template_says_where():
    with pytest.raises(rendering.TemplateRenderError, match="Line 2"):
        rendering.render_text("ok\n{% debug %}", DATA)


def test_render_dates_in_the_active_language():
    from django.utils import translation

    with translation.override("de"):
        text = rendering.render_text('{{ today|date:"j. F Y" }}', DATA)

    assert text == "3. März 2025"


# --- text from HTML -------------------------------------------------------------------------


def test_html_to_text_keeps_paragraphs_lists_and_links():
    source = (
        "<html><head><title>x</title><style>p{}</style></head><body>"
        "<p>Guten Tag <b>Frau Muster</b>,</p>"
        "<p>fällig sind:</p><ul><li>INV-1 &amp; INV-2</li><li>INV-3</li></ul>"
        '<p>Details: <a href="https://calserver.example/r/1">im Portal</a><br>'
        'Mail: <a href="mailto:labor@calserver.example">labor@calserver.example</a></p>'
        "<script>alert(1)</script></body></html>"
    )

    assert rendering.html_to_text(source) == (
        "Guten Tag Frau Muster,\n\n"
        "fällig sind:\n\n"
        "- INV-1 & INV-2\n"
        "- INV-3\n\n"
        "Details: im Portal (https://calserver.example/r/1)\n"
        "Mail: labor@calserver.example"
    )
