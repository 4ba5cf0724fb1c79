"""The restricted template engine mail templates are written in.

A template author is a trusted member of staff, but what they write is rendered with data
of customers and sent to the outside, so the engine is built to reach nothing but the data
it is given:

- an Engine of its own, not the project's: no context processors (no request, user,
  csrf token, messages), no loaders (no {% include %}/{% extends %} of files), and no
  libraries, so {% load %} of anything fails — the tag itself does not exist here;
- its only builtins are the library below, which re-registers a chosen set of Django's
  tags and filters. Left out on purpose: debug (dumps the context), load, include,
  extends, block, url, csrf_token, autoescape (could switch escaping off), templatetag,
  lorem, querystring, widthratio, resetcycle; the filters safe and safeseq (would let data
  through unescaped), json_script, escapejs, pprint, random, and everything not listed;
- the data is converted to plain, read-only values before rendering (freeze()): dicts
  become mappingproxy, lists become tuples, strings lose any "safe" marking, and anything
  that is not str, number, bool, None or a date is refused. So attribute lookups can only
  reach dict keys and tuple items, and no method that changes data or touches the
  database is reachable (Django already refuses names starting with an underscore);
- HTML is autoescaped; subject and text body are not (they are not HTML), and the subject
  is made one line;
- every {% for %} draws on an iteration budget per render, so nested loops over large
  reports cannot keep a worker busy for minutes.

check_template() compiles a template for saving and reports syntax errors and unknown
placeholders with their line numbers.
"""

import datetime
import decimal
import functools
import re
from collections.abc import Collection, Mapping
from html.parser import HTMLParser
from types import MappingProxyType

from django.template import (
    Context,
    Engine,
    Library,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import FilterExpression, Variable, VariableNode
from django.template.defaulttags import (
    CycleNode,
    FilterNode,
    FirstOfNode,
    ForNode,
    IfNode,
    NowNode,
    RegroupNode,
    WithNode,
)
from django.utils.functional import Promise
from django.utils.translation import gettext as _

# --- the library ---------------------------------------------------------------------------

MAX_LOOP_ITERATIONS = 200_000

SAFE_TAGS = (
    "comment",
    "cycle",
    "filter",
    "firstof",
    "ifchanged",
    "now",
    "regroup",
    "spaceless",
    "verbatim",
    "with",
)
SAFE_FILTERS = (
    "add",
    "capfirst",
    "center",
    "cut",
    "date",
    "default",
    "default_if_none",
    "dictsort",
    "dictsortreversed",
    "divisibleby",
    "escape",
    "filesizeformat",
    "first",
    "floatformat",
    "force_escape",
    "iriencode",
    "join",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "linenumbers",
    "ljust",
    "lower",
    "make_list",
    "pluralize",
    "rjust",
    "slice",
    "slugify",
    "stringformat",
    "striptags",
    "time",
    "timesince",
    "timeuntil",
    "title",
    "truncatechars",
    "truncatechars_html",
    "truncatewords",
    "truncatewords_html",
    "unordered_list",
    "upper",
    "urlencode",
    "urlize",
    "urlizetrunc",
    "wordcount",
    "wordwrap",
    "yesno",
)

library = Library()
for _name in SAFE_TAGS:
    library.tag(_name, defaulttags.register.tags[_name])
for _name in SAFE_FILTERS:
    _function = defaultfilters.register.filters[_name]
    # Library.filter would re-read the flags from the function; they are set on it already.
    library.filters[_name] = _function


class LoopBudgetExceeded(Exception):
    pass


class _BudgetedSequence:
    """Stands in for a {% for %} loop's sequence: charges its length to the render's
    budget before the loop runs."""

    def __init__(self, expression: FilterExpression):
        self.expression = expression

    def resolve(self, context, ignore_failures=False):
        values = self.expression.resolve(context, ignore_failures=ignore_failures)
        if values is None:
            return values
        if not hasattr(values, "__len__"):
            values = list(values)
        budget = context.render_context.dicts[0]
        budget["_loop_budget"] = budget.get("_loop_budget", MAX_LOOP_ITERATIONS) - len(values)
        if budget["_loop_budget"] < 0:
            raise LoopBudgetExceeded
        return values

    def __str__(self):
        return str(self.expression)


@library.tag("for")
def do_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.sequence = _BudgetedSequence(node.sequence)
    return node


@library.tag("if")
def do_if(parser, token):
    return defaulttags.do_if(parser, token)


class _SandboxEngine(Engine):
    # Django's own builtins (defaulttags, defaultfilters, loader_tags) are not loaded.
    default_builtins = []

    def get_template_builtins(self, builtins):
        return [library]

    def get_template_libraries(self, libraries):
        return {}


@functools.cache
def engine() -> Engine:
    return _SandboxEngine(
        dirs=[],
        app_dirs=False,
        context_processors=[],
        debug=False,
        loaders=[],
        string_if_invalid="",
        libraries={},
        builtins=[],
        autoescape=True,
    )


# --- plain data ----------------------------------------------------------------------------

_SCALARS = (bool, int, float, decimal.Decimal, datetime.date, datetime.time, type(None))


def freeze(value):
    """A read-only copy of plain data; TypeError for anything else (a model instance, a
    function, a request…), so nothing but data can reach a template."""
    if isinstance(value, str):
        # Drops a SafeString's marking (and any str subclass): data is always escaped.
        return "" + value
    if isinstance(value, Promise):
        return "" + str(value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    raise TypeError(f"Templates get plain data only, not {type(value).__name__}")


# --- rendering -----------------------------------------------------------------------------


class TemplateRenderError(Exception):
    """A template failed while rendering (not at compile time); the message says why."""


@functools.lru_cache(maxsize=256)
def compile_template(source: str):
    return engine().from_string(source)


def render(source: str, data: Mapping, *, autoescape: bool) -> str:
    """Render a template source over plain data; TemplateRenderError (with a message for
    the user) when it cannot be rendered."""
    if not source:
        return ""
    try:
        template = compile_template(source)
    except TemplateSyntaxError as exc:
        # Saved before a rule changed, or stored around the form: say where it breaks.
        raise TemplateRenderError(explain_syntax_error(exc)) from None
    context = Context(dict(freeze(data)), autoescape=autoescape)
    try:
        return template.render(context)
    except LoopBudgetExceeded:
        raise TemplateRenderError(
            _("The template loops over too many rows (more than %(limit)s in all).")
            % {"limit": MAX_LOOP_ITERATIONS}
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateRenderError(
            _("The template could not be rendered: %(error)s") % {"error": exc}
        ) from None


def render_subject(source: str, data: Mapping) -> str:
    """One line: line breaks would end the Subject header."""
    text = render(source, data, autoescape=False)
    return " ".join(text.split())


def render_html(source: str, data: Mapping) -> str:
    return render(source, data, autoescape=True)


def render_text(source: str, data: Mapping) -> str:
    return render(source, data, autoescape=False)


# --- checking on save ----------------------------------------------------------------------

_BUILTIN_NAMES = frozenset({"True", "False", "None"})
_INVALID_TAG = re.compile(r"Invalid block tag on line (\d+): '([^']+)'(, expected (.+?)\.)?")
_INVALID_FILTER = re.compile(r"Invalid filter: '([^']+)'")
_ON_LINE = re.compile(r"on line (\d+)")


def _line_of(exc: TemplateSyntaxError) -> int | None:
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "lineno", None):
        return token.lineno
    match = _ON_LINE.search(str(exc))
    return int(match.group(1)) if match else None


def explain_syntax_error(exc: TemplateSyntaxError) -> str:
    """A translated message with the line number for a template syntax error."""
    line = _line_of(exc) or 1
    text = str(exc)
    match = _INVALID_TAG.search(text)
    if match and match.group(3):
        return _("Line %(line)s: {%% %(tag)s %%} found where %(expected)s was expected.") % {
            "line": line,
            "tag": match.group(2),
            "expected": match.group(4),
        }
    if match:
        return _("Line %(line)s: the tag {%% %(tag)s %%} is not available in templates.") % {
            "line": line,
            "tag": match.group(2),
        }
    match = _INVALID_FILTER.search(text)
    if match:
        return _("Line %(line)s: the filter “%(filter)s” is not available in templates.") % {
            "line": line,
            "filter": match.group(1),
        }
    if "may not begin with underscores" in text:
        return _("Line %(line)s: names must not begin with an underscore.") % {"line": line}
    return _("Line %(line)s: %(error)s") % {"line": line, "error": text}


class _PlaceholderChecker:
    """Walks a compiled template and collects uses of names that are neither placeholders
    of the template's type nor variables the template defines itself (for, with, …)."""

    def __init__(self, allowed: Collection[str]):
        self.allowed = frozenset(allowed) | _BUILTIN_NAMES
        self.problems: list[tuple[int, str]] = []

    def variable(self, variable, names: set[str], line: int) -> None:
        if not isinstance(variable, Variable) or variable.lookups is None:
            return
        root = variable.lookups[0]
        if root not in names and root not in self.allowed:
            self.problems.append((line, root))

    def expression(
        self, expression, names: set[str], line: int, *, filters_only: bool = False
    ) -> None:
        if isinstance(expression, _BudgetedSequence):
            expression = expression.expression
        if isinstance(expression, FilterExpression):
            if not filters_only:
                self.variable(expression.var, names, line)
            for _function, arguments in expression.filters:
                for is_lookup, argument in arguments:
                    if is_lookup:
                        self.variable(argument, names, line)
        elif isinstance(expression, Variable):
            self.variable(expression, names, line)

    def condition(self, condition, names: set[str], line: int) -> None:
        if condition is None:
            return
        value = getattr(condition, "value", None)
        if isinstance(value, FilterExpression):
            self.expression(value, names, line)
        for part in ("first", "second"):
            child = getattr(condition, part, None)
            if child is not None:
                self.condition(child, names, line)

    def nodes(self, nodelist, names: set[str]) -> None:
        names = set(names)  # {% regroup %}, {% cycle … as x %} define names for what follows
        for node in nodelist:
            line = node.token.lineno if getattr(node, "token", None) else 1
            if isinstance(node, VariableNode):
                self.expression(node.filter_expression, names, line)
            elif isinstance(node, ForNode):
                self.expression(node.sequence, names, line)
                self.nodes(node.nodelist_loop, names | set(node.loopvars) | {"forloop"})
                self.nodes(node.nodelist_empty, names)
            elif isinstance(node, WithNode):
                for value in node.extra_context.values():
                    self.expression(value, names, line)
                self.nodes(node.nodelist, names | set(node.extra_context))
            elif isinstance(node, IfNode):
                for condition, branch in node.conditions_nodelists:
                    self.condition(condition, names, line)
                    self.nodes(branch, names)
            elif isinstance(node, RegroupNode):
                self.expression(node.target, names, line)
                names.add(node.var_name)
            elif isinstance(node, CycleNode):
                for value in node.cyclevars:
                    self.expression(value, names, line)
                if node.variable_name:
                    names.add(node.variable_name)
            elif isinstance(node, FirstOfNode):
                for value in node.vars:
                    self.expression(value, names, line)
                if node.asvar:
                    names.add(node.asvar)
            elif isinstance(node, NowNode):
                if node.asvar:
                    names.add(node.asvar)
            else:
                if isinstance(node, FilterNode):
                    # {% filter upper %} compiles to "var|upper": only the arguments are names.
                    self.expression(node.filter_expr, names, line, filters_only=True)
                for attribute in getattr(node, "child_nodelists", ()):
                    child = getattr(node, attribute, None)
                    if child:
                        self.nodes(child, names)


def check_template(source: str, *, placeholders: Collection[str]) -> list[str]:
    """The problems of a template source, each a message naming its line: syntax errors,
    tags and filters that are not available, unknown placeholders. Empty when fine."""
    if not source:
        return []
    try:
        template = engine().from_string(source)
    except TemplateSyntaxError as exc:
        return [explain_syntax_error(exc)]
    checker = _PlaceholderChecker(placeholders)
    checker.nodes(template.nodelist, set())
    messages = []
    seen = set()
    for line, name in checker.problems:
        if (line, name) in seen:
            continue
        seen.add((line, name))
        messages.append(
            _("Line %(line)s: “%(name)s” is not a placeholder of this template type.")
            % {"line": line, "name": name}
        )
    return messages


# --- HTML to text --------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"head", "script", "style", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.links: list[tuple[str | None, int]] = []
        self.list_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag in ("ul", "ol"):
            self.list_depth += 1
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n" + "  " * max(self.list_depth - 1, 0) + "- ")
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "table") else "\n")
        if tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self.skipping = max(self.skipping - 1, 0)
            return
        if tag in ("ul", "ol"):
            self.list_depth = max(self.list_depth - 1, 0)
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS and tag != "li":
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "table") else "\n")
        if tag == "a" and self.links:
            href, start = self.links.pop()
            target = (href or "").strip().removeprefix("mailto:")
            if target and not target.startswith(("#", "javascript:")):
                text = "".join(self.parts[start:]).strip()
                # A link whose text is its address says it once.
                if target != text:
                    self.parts.append(f" ({target})")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        raw = "".join(self.parts)
        lines = [line.strip(" \t").replace("\t", "  ").strip() for line in raw.split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(source: str) -> str:
    """A readable plain-text version of an HTML body: paragraphs and line breaks kept,
    list items as "- ", links as "text (address)", tags dropped, entities decoded."""
    extractor = _TextExtractor()
    extractor.feed(source or "")
    extractor.close()
    return extractor.text()
