"""Organiser templates in a Jinja sandbox: the few values they may use, the statements and operations they may not,
and the tokens that stand for whatever a `{{ … }}` produces.

Organiser templates may use `subscriber.name`, `unsubscribe_url`, `preferences_url` and `web_version_url`, nothing
else. `{{ subscriber.name }}` is the subscriber's name, or "friend" when we don't know it; `{{ subscriber.name or
"comrade" }}` chooses another word, and `{% if subscriber.name %}` tests whether we know it.
"""

import re
import secrets
import unicodedata
from contextvars import ContextVar
from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes, pass_eval_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from ..subscriptions.services import InvalidInput
from .models import BodyFormat

FALLBACK_NAME = "friend"
AVAILABLE = "You can use subscriber.name, unsubscribe_url, preferences_url and web_version_url."
VARIABLES = frozenset({"subscriber", "unsubscribe_url", "preferences_url", "web_version_url"})
# The values that differ from one recipient to the next (web_version_url is the same for the whole campaign).
PERSONAL = frozenset({"subscriber", "unsubscribe_url", "preferences_url"})
# Statements that pull in other templates or hand rendered output back to expressions (where a filter could
# mangle the tokens that stand for personal values).
REFUSED_STATEMENTS = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from … import %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.AssignBlock: "{% set %}…{% endset %}",
}
# Filters and string methods that can turn a short text into a huge one.
AMPLIFIERS = frozenset(
    {"batch", "center", "expandtabs", "format", "format_map", "indent", "ljust", "rjust", "wordwrap"}
)
MAX_SEQUENCE = 10_000


class TemplateRefused(InvalidInput):
    """The organiser's template can't be used; the message says why in words an organiser can act on."""


@dataclass(frozen=True)
class MailValues:
    """The values an organiser's template may use for one mail; `web_version` selects the public footer."""

    name: str | None
    unsubscribe_url: str
    preferences_url: str
    web_version_url: str
    web_version: bool = False


class UnknownName(str):
    """Shown for `{{ subscriber.name }}` when we don't know the name, yet false, so `or` and `if` can choose."""

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class TemplateSubscriber:
    """What a template may know about its recipient."""

    name: str


def clean_name(name: str | None) -> str:
    """A name as mails show it: one line, no control characters; "" when unknown."""
    name = name or ""
    if not name.isprintable():
        name = "".join(" " if unicodedata.category(ch) in {"Cc", "Cs"} else ch for ch in name)
    return " ".join(name.split())


class Tokens:
    """Stand-ins for values, made of letters and digits that Markdown, nh3, css-inline and inscriptis leave alone.

    The nonce is random and absent from the template, so organiser text can't forge a token.
    """

    def __init__(self, source: str):
        self.nonce = secrets.token_hex(8)
        while self.nonce in source:
            self.nonce = secrets.token_hex(8)
        # URL-shaped, so a URL value still works as a Markdown link or autolink target.
        base = f"https://uscmail.invalid/{self.nonce}/"
        self.urls = {"unsubscribe": base + "unsubscribe", "preferences": base + "preferences", "web": base + "web"}
        self.name = f"N{self.nonce}N"
        self.pattern = re.compile(rf"X{self.nonce}(\d+)X|{re.escape(base)}(unsubscribe|preferences|web)")
        self.text_pattern = re.compile(rf"X{self.nonce}\d+X")
        self.personal_url_pattern = re.compile(
            "|".join(re.escape(self.urls[key]) for key in ("unsubscribe", "preferences"))
        )

    def text(self, index: int) -> str:
        """The token for the index-th text value of a render."""
        return f"X{self.nonce}{index}X"


class Link(str):
    """A URL variable's value. Output as it is, it becomes a URL-shaped token, so it still works as a link target;
    anything made from it (`{{ web_version_url ~ "x" }}`) is text like any other value. The personal links may only
    be output as they are (see `render.PERSONAL_LINK_MISPLACED`)."""

    _kind = ""


def _link(url: str, kind: str) -> Link:
    link = Link(url)
    link._kind = kind
    return link


class _Outputs:
    """Collects what each `{{ … }}` of one render produced, handing back tokens."""

    def __init__(self, tokens: Tokens):
        self.tokens = tokens
        self.texts: list[str] = []

    def token_for(self, value) -> str:
        if value.__class__ is Link:
            return self.tokens.urls[value._kind]
        if value is None:
            return ""
        # Autoescaping concatenations yields Markup: take its text, which is escaped once, at the end.
        text = value.unescape() if isinstance(value, Markup) else str(value)
        if not text:
            return ""
        self.texts.append(text)
        return self.tokens.text(len(self.texts) - 1)


_outputs: ContextVar[_Outputs] = ContextVar("campaign_template_outputs")


@pass_eval_context  # needs a run-time context, so Jinja can't fold constant output at compile time
def _finalize(eval_context, value) -> str:
    return _outputs.get().token_for(value)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox without globals, `attr` or amplifying filters; `*`, `**` and `%` kept small."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, autoescape: bool):
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, finalize=_finalize, auto_reload=False)
        self.globals.clear()
        for name in AMPLIFIERS | {"attr"}:
            self.filters.pop(name, None)

    def is_safe_attribute(self, obj, attr: str, value) -> bool:
        """No underscored attributes (as the sandbox), nor string methods that pad or repeat."""
        return super().is_safe_attribute(obj, attr, value) and not (isinstance(obj, str) and attr in AMPLIFIERS)

    def call_binop(self, context, operator: str, left, right):
        """Refuse arithmetic that would build huge strings or numbers, and %-formatting of strings."""
        too_big = operator == "**" and isinstance(right, int | float) and abs(right) > 1000
        too_big = too_big or (operator == "%" and isinstance(left, str))
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                too_big = too_big or (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_SEQUENCE
                )
        if too_big:
            raise SecurityError(f"the {operator} operation would make too large a value")
        return super().call_binop(context, operator, left, right)


_ENVIRONMENTS = {BodyFormat.MARKDOWN: _Sandbox(autoescape=False), BodyFormat.HTML: _Sandbox(autoescape=True)}


def _refuse_name(name: str) -> TemplateRefused:
    return TemplateRefused(f"The template uses `{name}`, which is not available. {AVAILABLE}")


def _with_parents(node: nodes.Node, parent: nodes.Node | None = None):
    # Children first: `a.b.c` yields a, then b, then c, so the first problem found is the first in the source.
    for child in node.iter_child_nodes():
        yield from _with_parents(child, node)
    yield node, parent


def _check_tree(tree: nodes.Template) -> tuple[bool, bool]:
    """Refuse what the sandbox must not run; return whether the name, and the URLs, are only ever output as they are
    (`{{ subscriber.name }}`, `{{ subscriber.name or "…" }}`, `{{ unsubscribe_url }}`), so their values can be
    substituted into a finished render."""
    parents = {}
    undeclared = meta.find_undeclared_variables(tree) - VARIABLES
    for node, parent in _with_parents(tree):
        parents[id(node)] = parent
        words = next((words for kind, words in REFUSED_STATEMENTS.items() if isinstance(node, kind)), None)
        if words or (isinstance(node, nodes.For) and node.recursive):
            words = words or "{% for … recursive %}"
            raise TemplateRefused(f"The template uses `{words}`, which is not available in campaigns. {AVAILABLE}")
        name = node.name if isinstance(node, nodes.Name) and node.ctx == "load" else None
        if name == "self" or name in undeclared:
            raise _refuse_name(name)
        if name == "subscriber" and not (isinstance(parent, nodes.Getattr) and parent.attr == "name"):
            raise _refuse_name(f"subscriber.{parent.attr}" if isinstance(parent, nodes.Getattr) else "subscriber")
        attribute = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attribute = node.arg.value
        if attribute and attribute.startswith("_"):
            raise _refuse_name(attribute)
    plain = {"subscriber": True, "urls": True}
    for node in tree.find_all(nodes.Name):
        if node.name not in PERSONAL:
            continue
        value = parents[id(node)] if node.name == "subscriber" else node
        holder = parents[id(value)]
        fallback = None
        if node.name == "subscriber" and isinstance(holder, nodes.Or) and holder.left is value:
            value, holder, fallback = holder, parents[id(holder)], holder.right
        ok = node.ctx == "load" and isinstance(holder, nodes.Output)
        ok = ok and (fallback is None or (isinstance(fallback, nodes.Const) and isinstance(fallback.value, str)))
        key = "subscriber" if node.name == "subscriber" else "urls"
        plain[key] = plain[key] and ok
    return plain["subscriber"], plain["urls"]


def compile_body(source: str, body_format: BodyFormat):
    """Compile an organiser's template in the sandbox, or raise TemplateRefused; returns (template, name_plain,
    urls_plain) as `_check_tree` describes."""
    environment = _ENVIRONMENTS[BodyFormat(body_format)]
    try:
        tree = environment.parse(source)
        name_plain, urls_plain = _check_tree(tree)
        return environment.from_string(tree), name_plain, urls_plain
    except TemplateSyntaxError as exc:
        message = (exc.message or "").rstrip(".")
        raise TemplateRefused(f"The template has a mistake on line {exc.lineno}: {message}.") from None
