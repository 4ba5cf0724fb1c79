import datetime
import tracemalloc

import pytest
from django.conf import settings
from django.utils import translation
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
        "Line 5: {% endfor %} found where {% elif %}, {% else %} or {% endif %} was expected."
    ]


def test_check_reports_unclosed_tag_with_its_line():
    assert check("eins\nzwei\n{% for row in rows %}{{ row }}") == [
        "Line 3: {% for %} is not closed: {% endfor %} is missing."
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a\n{% endif %}", "Line 2: {% endif %} has no opening tag before it."),
        (
            "{% if count %}\n{% foo %}{% endif %}",
            "Line 2: the tag {% foo %} is not available in templates.",
        ),
        ("\n\n{{ count|nope }}", "Line 3: the filter “nope” is not available in templates."),
        ("{{ count|add }}", "Line 1: the filter “add” needs an argument after a colon (add:…)."),
        ("{{ count|upper:1 }}", "Line 1: the filter “upper” takes no argument."),
        ("x\n{{ }}", "Line 2: {{ }} is empty; write a placeholder between the braces."),
        ("{% %}", "Line 1: {% %} is empty; write a tag between the braces."),
        ("{{ count bla }}", "Line 1: the placeholder {{ count bla }} cannot be read."),
        ("{{ 'a }}", "Line 1: the placeholder {{ 'a }} cannot be read."),
        (
            "{% if count == %}x{% endif %}",
            "Line 1: the condition in {% if count == %} cannot be read.",
        ),
        ("\n{% for row %}{% endfor %}", "Line 2: the tag {% for row %} is not written correctly."),
        ("{% cycle %}", "Line 1: the tag {% cycle %} is not written correctly."),
        ("{% comment %}x", "Line 1: {% comment %} is not closed: {% endcomment %} is missing."),
    ],
)
def test_check_says_each_kind_of_syntax_error_in_own_words(source, message):
    assert check(source) == [message]


def test_check_says_syntax_errors_in_german():
    with translation.override("de"):
        assert check("{% if count %}{% endfor %}{% endif %}") == [
            "Zeile 1: {% endfor %} gefunden, erwartet wurde {% elif %}, {% else %} oder {% endif %}."
        ]
        assert check("\n{{ count|nope }}") == [
            "Zeile 2: Der Filter „nope“ ist in Vorlagen nicht verfügbar."
        ]


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


def test_html_to_text_of_deeply_nested_lists_stays_small_in_memory():
    # Every <ul> indented the items below it by two more spaces, which the text then drops:
    # 5000 nested lists made 50 million spaces (2.4 GB at 20000).
    source = "<ul>" * 5000 + "<li>x" * 5000

    text, peak = peak_memory(rendering.html_to_text, source)

    assert text == "\n".join(["- x"] * 5000)
    assert peak < 5_000_000


def test_html_to_text_of_nested_links_names_each_address():
    # Each </a> used to join all the text since its <a>: quadratic time for deeply nested
    # links (13 s for 40,000). The result is what it always was; the time is no test's
    # business (STYLE: figures belong in bench/, never in timed assertions).
    source = '<a href="https://x.example">' * 8_000 + "x" + "</a>" * 8_000

    text = rendering.html_to_text(source)

    assert text == "x" + " (https://x.example)" * 8_000


# --- size limits ----------------------------------------------------------------------------

# The scan's example: 36 bytes of template that made a 30 MB preview.
ATTACK = '{{ recipient.email|ljust:"30000000" }}'
EMAIL = {"recipient": {"email": "einkauf@muster.example"}, "rows": list(range(200))}


def peak_memory(function, *args):
    """What function returns (or the TemplateRenderError it raises) and the peak of the
    memory Python allocated meanwhile (tracemalloc)."""
    tracemalloc.start()
    try:
        try:
            outcome = function(*args)
        except rendering.TemplateRenderError as exc:
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def render_error(function, *args) -> str:
    with pytest.raises(rendering.TemplateRenderError) as caught:
        function(*args)
    return str(caught.value)


@pytest.mark.parametrize("name", ["ljust", "rjust", "center"])
def test_render_refuses_a_width_over_the_cap(name):
    source = f'Hallo\n{{{{ recipient.email|{name}:"30000000" }}}}'

    assert render_error(rendering.render_html, source, EMAIL) == (
        f"Line 2: the width 30000000 in “{name}” is larger than the allowed 200."
    )


def test_render_of_the_attack_stays_small_in_memory():
    rendering.compile_template(ATTACK)  # compiled (and cached) outside the measurement

    outcome, peak = peak_memory(rendering.render_html, ATTACK, EMAIL)

    # Before: the 30 MB text, peak 60 MB.
    assert isinstance(outcome, rendering.TemplateRenderError)
    assert peak < 1_000_000


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            '{{ recipient.email|stringformat:"30000000s" }}',
            "Line 1: the number 30000000 in “stringformat” is larger than the allowed 200.",
        ),
        (
            '{{ count|stringformat:".500f" }}',
            "Line 1: the number 500 in “stringformat” is larger than the allowed 200.",
        ),
        (
            "{{ count|floatformat:300000 }}",
            "Line 1: the number 300000 in “floatformat” is larger than the allowed 200.",
        ),
        (
            '{% with digits="-400g" %}\n{{ count|floatformat:digits }}{% endwith %}',
            "Line 2: the number 400 in “floatformat” is larger than the allowed 200.",
        ),
    ],
)
def test_render_refuses_numbers_and_formats_over_the_cap(source, message):
    data = {**DATA, "count": 2}

    assert render_error(rendering.render_text, source, data) == message


def test_render_refuses_a_long_date_format():
    # Made while rendering, so only the render can tell: 10 → 50 → 250 characters.
    source = (
        '{% with f="rrrrrrrrrr" %}{% with g=f|add:f|add:f|add:f|add:f %}'
        "{% with h=g|add:g|add:g|add:g|add:g %}{{ today|date:h|length }}"
        "{% endwith %}{% endwith %}{% endwith %}"
    )

    assert render_error(rendering.render_text, source, DATA) == (
        "Line 1: the format in “date” is longer than the allowed 200 characters."
    )


def test_render_refuses_filters_that_multiply_the_text(settings):
    settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS = 100_000
    # 22 characters → 484 → 11110 → 255552: each make_list|join multiplies by 23.
    grow = "|make_list|join:recipient.email"
    source = "{{ recipient.email" + grow * 4 + "|length }}"

    assert render_error(rendering.render_text, source, EMAIL) == (
        "Line 1: “join” would make a text longer than the allowed 100000 characters."
    )


def test_render_counts_what_filters_make_in_all(settings):
    settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS = 1000
    # Nothing of it is output, but 200 times 200 characters are made (and could be kept).
    source = '{% for a in rows %}{% if recipient.email|ljust:"200" %}x{% endif %}{% endfor %}'

    assert render_error(rendering.render_text, source, EMAIL) == (
        "Line 1: the filters would make more than 10000 characters in all."
    )


def test_render_stops_as_soon_as_the_body_passes_its_limit(settings):
    settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS = 1000
    source = "{% for a in rows %}\n{% for b in rows %}{{ recipient.email }}{% endfor %}{% endfor %}"
    rendering.compile_template(source)

    outcome, peak = peak_memory(rendering.render_html, source, EMAIL)

    assert isinstance(outcome, rendering.TemplateRenderError)
    assert str(outcome) == "Line 2: the HTML body would be longer than the allowed 1000 characters."
    # 200 times 200 addresses (880 000 characters) were never made: the loop stopped early.
    assert peak < 300_000


def test_render_text_body_has_its_own_message(settings):
    settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS = 10

    assert rendering.render_text("{{ recipient.email|slice:':10' }}", EMAIL) == "einkauf@mu"
    assert render_error(rendering.render_text, "x\n{{ recipient.email }}", EMAIL) == (
        "Line 2: the text body would be longer than the allowed 10 characters."
    )


def test_render_subject_longer_than_its_limit_is_refused(settings):
    long_name = {"recipient": {"name": "x" * 999}}

    assert rendering.render_subject("{{ recipient.name|slice:':998' }}", long_name) == "x" * 998
    assert render_error(rendering.render_subject, "{{ recipient.name }}", long_name) == (
        "Line 1: the subject would be longer than the allowed 998 characters."
    )
    settings.CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS = 20
    assert render_error(rendering.render_subject, "Fällig: {{ recipient.email }}", EMAIL) == (
        "Line 1: the subject would be longer than the allowed 20 characters."
    )


def test_render_within_the_caps_is_unchanged():
    data = {**DATA, "recipient": {"name": "Muster GmbH"}}
    source = (
        '{{ recipient.name|ljust:"12" }}|{{ recipient.name|rjust:12 }}|'
        '{{ recipient.name|center:"15" }}|{{ count|stringformat:"06d" }}|'
        '{{ 3.14159|floatformat:2 }}|{{ "x"|ljust:"200"|length }}|'
        '{{ today|date:"d.m.Y" }}|{% for row in rows %}{{ row.inventory_number }}'
        "{% if not forloop.last %}, {% endif %}{% endfor %}|{{ rows|length }}|"
        "{{ recipient.name|make_list|join:'.' }}"
    )

    assert rendering.render_text(source, data) == (
        "Muster GmbH | Muster GmbH|  Muster GmbH  |000002|3.14|200|03.03.2025|INV-1, INV-2|2|"
        "M.u.s.t.e.r. .G.m.b.H"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (ATTACK, "Line 1: the width 30000000 in “ljust” is larger than the allowed 200."),
        (
            "x\n{{ recipient.email|center:300 }}",
            "Line 2: the width 300 in “center” is larger than the allowed 200.",
        ),
        (
            '{% with w=recipient.email|rjust:"201" %}{{ w }}{% endwith %}',
            "Line 1: the width 201 in “rjust” is larger than the allowed 200.",
        ),
        (
            '{% filter ljust:"1000" %}x{% endfilter %}',
            "Line 1: the width 1000 in “ljust” is larger than the allowed 200.",
        ),
        (
            '{{ count|stringformat:"030000000d" }}',
            "Line 1: the number 30000000 in “stringformat” is larger than the allowed 200.",
        ),
        (
            '{% if count|floatformat:"-300" %}x{% endif %}',
            "Line 1: the number 300 in “floatformat” is larger than the allowed 200.",
        ),
        (
            '{{ today|date:"' + "r" * 201 + '" }}',
            "Line 1: the format in “date” is longer than the allowed 200 characters.",
        ),
        (
            'x\n{% now "' + "r" * 201 + '" %}',
            "Line 2: the format in “now” is longer than the allowed 200 characters.",
        ),
    ],
)
def test_check_refuses_widths_and_formats_over_the_cap(source, message):
    assert check(source) == [message]


def test_check_accepts_widths_and_formats_up_to_the_cap():
    source = (
        '{{ recipient.name|ljust:"200" }}{{ recipient.name|center:200 }}'
        '{{ count|stringformat:"0200d" }}{{ count|floatformat:"-200" }}'
        '{{ today|date:"' + "j" * 200 + '" }}{% now "Y" %}{{ recipient.name|ljust:width }}'
    )

    assert check(source) == ["Line 1: “width” is not a placeholder of this template type."]


def test_check_leaves_other_numbers_in_arguments_to_the_render():
    source = (
        '{{ count|stringformat:"d of 2025" }}{{ count|stringformat:"(key5000)s" }}'
        "{{ recipient.name|ljust:1e999 }}"
    )

    assert check(source) == []
    assert rendering.render_text('{{ count|stringformat:"d of 2025" }}', DATA) == "2 of 2025"
