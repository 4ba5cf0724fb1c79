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
  reports cannot keep a worker busy for minutes;
- nothing can make unbounded text: filters that take a width, precision or format
  (ljust, rjust, center, stringformat, floatformat, date, time, {% now %}) refuse more than
  MAX_WIDTH; join, add and linenumbers refuse a result longer than
  CALMAIL_TEMPLATE_MAX_BODY_CHARS before making it, every filter's result is held to it,
  and all filters of a render together make at most MADE_TEXT_FACTOR times as much; each
  node's output is counted as it is rendered, so a subject, HTML or text body stops as soon
  as it passes its limit (CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS, …_BODY_CHARS) instead of
  being built first. The messages name the line, and check_template() refuses a width or
  format written into the template on save already.

check_template() compiles a template for saving and reports syntax errors and unknown
placeholders with their line numbers.
"""

import datetime
import decimal
import functools
import re
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from html.parser import HTMLParser
from types import MappingProxyType

from django.conf import settings
from django.template import (
    Context,
    Engine,
    Library,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import FilterExpression, Node, TokenType, Variable, VariableNode
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
from django.utils.html import conditional_escape
from django.utils.text import get_text_list
from django.utils.translation import gettext as _

# --- size limits ---------------------------------------------------------------------------

# The largest width (ljust, rjust, center), number in a format (stringformat, floatformat)
# and length of a date format (date, time, {% now %}): far more than a mail's layout needs,
# small enough that no single filter makes a long text from a short template.
MAX_WIDTH = 200
# All filters of one render together may make this many times the body limit: room for
# texts made and dropped (in conditions, truncated), no room to hoard memory in {% with %}.
MADE_TEXT_FACTOR = 10


class _TooLarge(Exception):
    """Something would make too much text; the node rendering it adds its line."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


class ExplainedSyntaxError(TemplateSyntaxError):
    """A syntax error whose message is ours already (translated, without the line)."""


@dataclass
class _Budget:
    """What one render of one part may still make."""

    limit: int  # characters the part may have
    too_long: str  # the message when it has more
    text_limit: int  # characters any one filter result may have
    output: int = 0  # characters rendered so far
    made: int = 0  # characters (or items) the filters have made so far


_budget: ContextVar[_Budget | None] = ContextVar("calmail_template_budget", default=None)


def _text_limit() -> int:
    budget = _budget.get()
    return budget.text_limit if budget is not None else settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS


def _check_width(name: str, argument) -> None:
    try:
        width = int(argument)
    except (TypeError, ValueError, OverflowError):
        return  # the filter itself fails on it, as Django's does
    if width > MAX_WIDTH:
        raise _TooLarge(
            _("the width %(width)s in “%(filter)s” is larger than the allowed %(limit)s.")
            % {"width": width, "filter": name, "limit": MAX_WIDTH}
        )


def _check_number(name: str, digits: str) -> None:
    number = digits.lstrip("0") or "0"
    # Compared as text first: int() refuses more than 4300 digits.
    if len(number) > len(str(MAX_WIDTH)) or int(number) > MAX_WIDTH:
        raise _TooLarge(
            _("the number %(number)s in “%(filter)s” is larger than the allowed %(limit)s.")
            % {"number": number, "filter": name, "limit": MAX_WIDTH}
        )


def _check_numbers(name: str, argument) -> None:
    """floatformat: "2", "-3", "2g", "3u" …"""
    for digits in re.findall(r"\d+", str(argument)):
        _check_number(name, digits)


# A printf-style conversion: %, a mapping key, flags, width, precision, length, type.
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*)(?:\.(\d*))?[hlL]?[a-zA-Z%]")


def _check_conversions(name: str, argument) -> None:
    """stringformat: the width and precision of each conversion, not digits in between."""
    for match in _CONVERSION.finditer("%" + str(argument)):
        for digits in match.groups():
            if digits:
                _check_number(name, digits)


def _check_format(name: str, argument) -> None:
    # A date format character can stand for up to 32 characters ("c", "r").
    if argument is not None and len(str(argument)) > MAX_WIDTH:
        raise _TooLarge(
            _("the format in “%(filter)s” is longer than the allowed %(limit)s characters.")
            % {"filter": name, "limit": MAX_WIDTH}
        )


ARGUMENT_CHECKS: dict[str, Callable[[str, object], None]] = {
    "center": _check_width,
    "ljust": _check_width,
    "rjust": _check_width,
    "stringformat": _check_conversions,
    "floatformat": _check_numbers,
    "date": _check_format,
    "time": _check_format,
}


def _joined_size(value, argument, autoescape: bool) -> int:
    try:
        count = len(value)
    except TypeError:
        return 0
    separator = conditional_escape(argument) if autoescape else str(argument)
    return len(separator) * max(count - 1, 0)


def _added_size(value, argument, autoescape: bool) -> int:
    if isinstance(value, str | tuple | list) and isinstance(argument, str | tuple | list):
        return len(value) + len(argument)
    return 0


def _numbered_size(value, autoescape: bool) -> int:
    if not isinstance(value, str):
        return 0
    lines = value.count("\n") + 1
    return len(value) + lines * (len(str(lines)) + 2)


# What a filter whose result can be many times its input would make, told before it does.
SIZE_ESTIMATES: dict[str, Callable[..., int]] = {
    "add": _added_size,
    "join": _joined_size,
    "linenumbers": _numbered_size,
}


def _bounded(name: str, function: Callable) -> Callable:
    """The filter, refusing an argument over its cap, a result over the text limit, and
    more text in all than the render may make."""
    check = ARGUMENT_CHECKS.get(name)
    estimate = SIZE_ESTIMATES.get(name)

    # functools.wraps copies the flags (is_safe, needs_autoescape, expects_localtime)
    # Django reads from the function, and lets it find the real signature.
    @functools.wraps(function)
    def bounded(value, *args, **kwargs):
        if check is not None and args:
            check(name, args[0])
        limit = _text_limit()
        if estimate is not None and estimate(value, *args, kwargs.get("autoescape", False)) > limit:
            raise _TooLarge(_too_much_text(name, limit))
        result = function(value, *args, **kwargs)
        if isinstance(result, str | tuple | list):
            if len(result) > limit:
                raise _TooLarge(_too_much_text(name, limit))
            budget = _budget.get()
            if budget is not None:
                budget.made += len(result)
                if budget.made > MADE_TEXT_FACTOR * limit:
                    raise _TooLarge(
                        _("the filters would make more than %(limit)s characters in all.")
                        % {"limit": MADE_TEXT_FACTOR * limit}
                    )
        return result

    bounded.argument_check = functools.partial(check, name) if check is not None else None
    return bounded


def _too_much_text(name: str, limit: int) -> str:
    return _("“%(filter)s” would make a text longer than the allowed %(limit)s characters.") % {
        "filter": name,
        "limit": limit,
    }


def _line(node: Node) -> int:
    return getattr(getattr(node, "token", None), "lineno", None) or 1


def _count_output(node: Node) -> None:
    """Make the node count what it renders against the running render's budget, and stop
    the render as soon as the part passes its limit: a loop is stopped in the iteration
    that passes it, not after its whole output has been built."""
    render_annotated = node.render_annotated
    line = _line(node)

    def render_counted(context):
        budget = _budget.get()
        if budget is None:
            return render_annotated(context)
        before = budget.output
        try:
            output = render_annotated(context)
        except _TooLarge as exc:
            if exc.line is None:
                exc.line = line
            raise
        # What the children counted while rendering is replaced by what this node
        # returns: exact for {% filter %}, {% spaceless %} and {% ifchanged %} too.
        budget.output = before + len(output)
        if budget.output > budget.limit:
            raise _TooLarge(budget.too_long, line)
        return output

    node.render_annotated = render_counted


# --- the library ---------------------------------------------------------------------------

MAX_LOOP_ITERATIONS = 200_000

# for, if and now are registered below, wrapped.
SAFE_TAGS = (
    "comment",
    "cycle",
    "filter",
    "firstof",
    "ifchanged",
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
    # Library.filter would re-read the flags from the function; they are set on it already.
    library.filters[_name] = _bounded(_name, defaultfilters.register.filters[_name])


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


@library.tag("now")
def do_now(parser, token):
    node = defaulttags.now(parser, token)
    try:
        _check_format("now", node.format_string)
    except _TooLarge as exc:
        raise ExplainedSyntaxError(exc.message) from None
    return node


class _SandboxEngine(Engine):
    # Django's own builtins (defaulttags, defaultfilters, loader_tags) are not loaded.
    default_builtins = []

    def get_template_builtins(self, builtins):
        return [library]

    def get_template_libraries(self, libraries):
        return {}

    def from_string(self, template_code):
        template = super().from_string(template_code)
        for node in template.nodelist.get_nodes_by_type(Node):
            _count_output(node)
        return template


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


# The exact types freeze() passes through as they are (subclasses take the long way).
_PASSED = frozenset(
    (str, bool, int, float, decimal.Decimal, datetime.date, datetime.datetime, datetime.time)
) | {type(None)}


def freeze(value):
    """A read-only copy of plain data; TypeError for anything else (a model instance, a
    function, a request…), so nothing but data can reach a template."""
    # Plain str, numbers, dates, dicts and lists first, by their exact type: a render
    # freezes some seventy values, twice per mail of a fan-out.
    kind = type(value)
    if kind in _PASSED:
        return value
    if kind is dict:
        frozen = {}
        for key, item in value.items():
            frozen[key if type(key) is str else str(key)] = (
                item if type(item) in _PASSED else freeze(item)
            )
        return MappingProxyType(frozen)
    if kind is list or kind is tuple:
        return tuple([item if type(item) in _PASSED else freeze(item) for item in value])
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


def render(source: str, data: Mapping, *, autoescape: bool, limit: int, too_long: str) -> str:
    """Render a template source over plain data; TemplateRenderError (with a message for
    the user) when it cannot be rendered.

    The result has at most `limit` characters: the render stops as soon as it passes them,
    with `too_long` as the message (after the line).
    """
    if not source:
        return ""
    try:
        template = compile_template(source)
    except TemplateSyntaxError as exc:
        # Saved before a rule changed, or stored around the form: say where it breaks.
        raise TemplateRenderError(explain_syntax_error(exc)) from None
    budget = _Budget(
        limit=limit, too_long=too_long, text_limit=settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS
    )
    context = Context(dict(freeze(data)), autoescape=autoescape)
    token = _budget.set(budget)
    try:
        return template.render(context)
    except _TooLarge as exc:
        raise TemplateRenderError(
            _("Line %(line)s: %(error)s") % {"line": exc.line or 1, "error": exc.message}
        ) from None
    except LoopBudgetExceeded:
        raise TemplateRenderError(
            _("The template loops over too many rows (more than %(limit)s in all).")
            % {"limit": MAX_LOOP_ITERATIONS}
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateRenderError(
            _("The template could not be rendered: %(error)s") % {"error": exc}
        ) from None
    finally:
        _budget.reset(token)


def render_subject(source: str, data: Mapping) -> str:
    """One line: line breaks would end the Subject header. At most
    CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS, counted before line breaks and runs of spaces are
    made one space, so the render can stop as soon as it passes them."""
    limit = settings.CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS
    too_long = _("the subject would be longer than the allowed %(limit)s characters.")
    text = render(source, data, autoescape=False, limit=limit, too_long=too_long % {"limit": limit})
    return " ".join(text.split())


def render_html(source: str, data: Mapping) -> str:
    """At most CALMAIL_TEMPLATE_MAX_BODY_CHARS."""
    limit = settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS
    too_long = _("the HTML body would be longer than the allowed %(limit)s characters.")
    return render(source, data, autoescape=True, limit=limit, too_long=too_long % {"limit": limit})


def render_text(source: str, data: Mapping) -> str:
    """At most CALMAIL_TEMPLATE_MAX_BODY_CHARS."""
    limit = settings.CALMAIL_TEMPLATE_MAX_BODY_CHARS
    too_long = _("the text body would be longer than the allowed %(limit)s characters.")
    return render(source, data, autoescape=False, limit=limit, too_long=too_long % {"limit": limit})


# --- checking on save ----------------------------------------------------------------------

_BUILTIN_NAMES = frozenset({"True", "False", "None"})
# Django's syntax errors are English (partly translated: "or"); each kind it raises is
# matched here and said again in the reader's language, with the line.
_UNCLOSED = re.compile(r"^Unclosed tag on line \d+: '([^']+)'\. Looking for one of: (.+)\.$")
_INVALID_TAG = re.compile(r"^Invalid block tag on line \d+: '([^']+)'(, expected (.+?))?\. Did you")
_INVALID_FILTER = re.compile(r"^Invalid filter: '([^']+)'")
_ARGUMENT_COUNT = re.compile(r"^(\w+) requires (\d+) arguments, (\d+) provided")
_BAD_VARIABLE = (
    "Could not parse the remainder",
    "Could not parse some characters",
    "Could not find variable",
)
_BAD_CONDITION = ("in if tag", "at end of if expression")
# Tags that close or continue a block: outside their block they are misplaced, not unknown.
_CONTINUING_TAGS = frozenset({"else", "elif", "empty"})
_ON_LINE = re.compile(r"on line (\d+)")


def _line_of(exc: TemplateSyntaxError) -> int | None:
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "lineno", None):
        return token.lineno
    match = _ON_LINE.search(str(exc))
    return int(match.group(1)) if match else None


def _tag_list(names) -> str:
    return get_text_list([f"{{% {name} %}}" for name in names], _("or"))


def explain_syntax_error(exc: TemplateSyntaxError) -> str:
    """A translated message with the line number for a template syntax error."""
    line = _line_of(exc) or 1
    text = str(exc)
    token = getattr(exc, "token", None)
    contents = getattr(token, "contents", "") or ""
    if isinstance(exc, ExplainedSyntaxError):
        return _("Line %(line)s: %(error)s") % {"line": line, "error": text}
    match = _UNCLOSED.search(text)
    if match:
        ends = [name.strip() for name in match.group(2).split(",")]
        closing = [name for name in ends if name.startswith("end")] or ends[-1:]
        return _("Line %(line)s: {%% %(tag)s %%} is not closed: %(end)s is missing.") % {
            "line": line,
            "tag": match.group(1),
            "end": _tag_list(closing),
        }
    match = _INVALID_TAG.search(text)
    if match:
        tag = match.group(1)
        if not (tag.startswith("end") or tag in _CONTINUING_TAGS):
            return _("Line %(line)s: the tag {%% %(tag)s %%} is not available in templates.") % {
                "line": line,
                "tag": tag,
            }
        if match.group(3):
            return _("Line %(line)s: {%% %(tag)s %%} found where %(expected)s was expected.") % {
                "line": line,
                "tag": tag,
                "expected": _tag_list(re.findall(r"'([^']+)'", match.group(3))),
            }
        return _("Line %(line)s: {%% %(tag)s %%} has no opening tag before it.") % {
            "line": line,
            "tag": tag,
        }
    match = _INVALID_FILTER.search(text)
    if match:
        return _("Line %(line)s: the filter “%(filter)s” is not available in templates.") % {
            "line": line,
            "filter": match.group(1),
        }
    match = _ARGUMENT_COUNT.search(text)
    if match:
        name, needed, given = match.group(1), int(match.group(2)), int(match.group(3))
        if given > needed:
            return _("Line %(line)s: the filter “%(filter)s” takes no argument.") % {
                "line": line,
                "filter": name,
            }
        return _(
            "Line %(line)s: the filter “%(filter)s” needs an argument after a colon (%(filter)s:…)."
        ) % {"line": line, "filter": name}
    if "may not begin with underscores" in text:
        return _("Line %(line)s: names must not begin with an underscore.") % {"line": line}
    if text.startswith("Empty variable tag"):
        return _("Line %(line)s: {{ }} is empty; write a placeholder between the braces.") % {
            "line": line
        }
    if text.startswith("Empty block tag"):
        return _("Line %(line)s: {%% %%} is empty; write a tag between the braces.") % {
            "line": line
        }
    if text.startswith(_BAD_VARIABLE) and token is not None and token.token_type == TokenType.VAR:
        return _("Line %(line)s: the placeholder {{ %(expression)s }} cannot be read.") % {
            "line": line,
            "expression": contents,
        }
    if any(part in text for part in _BAD_CONDITION):
        return _("Line %(line)s: the condition in {%% %(contents)s %%} cannot be read.") % {
            "line": line,
            "contents": contents,
        }
    if token is not None and token.token_type == TokenType.BLOCK:
        # Wrong arguments of a tag (for, with, cycle, regroup, …), a bad expression in one.
        return _("Line %(line)s: the tag {%% %(contents)s %%} is not written correctly.") % {
            "line": line,
            "contents": contents,
        }
    if token is not None and token.token_type == TokenType.VAR:
        return _("Line %(line)s: the placeholder {{ %(expression)s }} cannot be read.") % {
            "line": line,
            "expression": contents,
        }
    return _("Line %(line)s: the template cannot be read here.") % {"line": line}


class _PlaceholderChecker:
    """Walks a compiled template and collects uses of names that are neither placeholders
    of the template's type nor variables the template defines itself (for, with, …), and
    widths and formats over MAX_WIDTH written into the template."""

    def __init__(self, allowed: Collection[str]):
        self.allowed = frozenset(allowed) | _BUILTIN_NAMES
        self.problems: list[tuple[int, str]] = []

    def variable(self, variable, names: set[str], line: int) -> None:
        if not isinstance(variable, Variable) or variable.lookups is None:
            return
        root = variable.lookups[0]
        if root not in names and root not in self.allowed:
            self.problems.append(
                (
                    line,
                    _("Line %(line)s: “%(name)s” is not a placeholder of this template type.")
                    % {"line": line, "name": root},
                )
            )

    def argument(self, function, arguments, line: int) -> None:
        check = getattr(function, "argument_check", None)
        if check is None or not arguments:
            return
        is_lookup, argument = arguments[0]
        if is_lookup:
            if not isinstance(argument, Variable) or argument.lookups is not None:
                return  # a placeholder: only the render knows its value
            argument = argument.literal  # a number written without quotes
        try:
            check(argument)
        except _TooLarge as exc:
            self.problems.append(
                (line, _("Line %(line)s: %(error)s") % {"line": line, "error": exc.message})
            )

    def expression(
        self, expression, names: set[str], line: int, *, filters_only: bool = False
    ) -> None:
        if isinstance(expression, _BudgetedSequence):
            expression = expression.expression
        if isinstance(expression, FilterExpression):
            if not filters_only:
                self.variable(expression.var, names, line)
            for function, arguments in expression.filters:
                for is_lookup, argument in arguments:
                    if is_lookup:
                        self.variable(argument, names, line)
                self.argument(function, arguments, line)
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
    tags and filters that are not available, unknown placeholders, widths and formats
    over MAX_WIDTH. Empty when fine."""
    if not source:
        return []
    try:
        template = engine().from_string(source)
    except TemplateSyntaxError as exc:
        return [explain_syntax_error(exc)]
    checker = _PlaceholderChecker(placeholders)
    checker.nodes(template.nodelist, set())
    # One message per problem and line, in the order of the template.
    return list(dict.fromkeys(message for _line, message in checker.problems))


# --- HTML to text --------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"head", "script", "style", "title"})


# Deeper lists are indented no further: every item carries its indentation, and 20 000
# nested lists made gigabytes of it.
_MAX_LIST_INDENT = 10
# A link's text longer than its address by more than this is not the address, however
# much white space text() would strip around it: no need to join it to compare.
_LINK_TEXT_SLACK = 200


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0  # characters in parts
        self.skipping = 0
        self.links: list[tuple[str | None, int, int]] = []
        self.list_depth = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
            return
        if tag == "br":
            self.add("\n")
        elif tag in ("ul", "ol"):
            self.list_depth += 1
            self.add("\n")
        elif tag == "li":
            self.add("\n" + "  " * min(max(self.list_depth - 1, 0), _MAX_LIST_INDENT) + "- ")
        elif tag in ("td", "th"):
            self.add("\t")
        elif tag in _BLOCK_TAGS:
            self.add("\n\n" if tag in ("p", "h1", "h2", "h3", "table") else "\n")
        if tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts), self.size))

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self.skipping = max(self.skipping - 1, 0)
            return
        if tag in ("ul", "ol"):
            self.list_depth = max(self.list_depth - 1, 0)
            self.add("\n")
        elif tag in _BLOCK_TAGS and tag != "li":
            self.add("\n\n" if tag in ("p", "h1", "h2", "h3", "table") else "\n")
        if tag == "a" and self.links:
            href, start, start_size = self.links.pop()
            target = (href or "").strip().removeprefix("mailto:")
            if target and not target.startswith(("#", "javascript:")):
                # Nested links would each join all text since their start: quadratic time.
                if self.size - start_size > len(target) + _LINK_TEXT_SLACK:
                    text = None
                else:
                    text = "".join(self.parts[start:]).strip()
                # A link whose text is its address says it once.
                if target != text:
                    self.add(f" ({target})")

    def handle_data(self, data):
        if not self.skipping:
            self.add(re.sub(r"\s+", " ", data))

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
