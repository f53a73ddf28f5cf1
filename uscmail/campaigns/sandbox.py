"""Campaign templates in the shared sandbox (uscmail/templating.py, which also holds the limits): the few values they
may use, and the tokens that stand for whatever a `{{ … }}` produces.

Organiser templates may use `subscriber.name`, `unsubscribe_url`, `preferences_url` and `web_version_url`, nothing
else. `{{ subscriber.name }}` is the subscriber's name, or "supporter" when we don't know it; `{{ subscriber.name or
"comrade" }}` chooses another word, and `{% if subscriber.name %}` tests whether we know it.
"""

import re
import secrets
import unicodedata
from contextvars import ContextVar
from dataclasses import dataclass

from jinja2 import nodes, pass_eval_context
from markupsafe import Markup

from .. import templating
from ..templating import TemplateRefused
from .models import BodyFormat

# Not "friend": "Dear friend" is a classic spam opening (SpamAssassin DEAR_FRIEND, +2.7 on every nameless reader).
FALLBACK_NAME = "supporter"
# The same word in the other languages a campaign may be written in.
FALLBACK_NAMES = {"en": FALLBACK_NAME, "ug": "قوللىغۇچى", "zh": "支持者"}
AVAILABLE = "You can use subscriber.name, unsubscribe_url, preferences_url and web_version_url."
SUBJECT_AVAILABLE = "A subject can use subscriber.name."
SUBJECT_VARIABLES = frozenset({"subscriber"})
SUBJECT_MAX_RENDERED = 500
TEMPLATE_MARKS = ("{{", "{%", "{#")
VARIABLES = frozenset({"subscriber", "unsubscribe_url", "preferences_url", "web_version_url"})
# The values that differ from one recipient to the next (web_version_url is the same for the whole campaign).
PERSONAL = frozenset({"subscriber", "unsubscribe_url", "preferences_url"})
MAX_SAMPLE_NAMES = 12
__all__ = ["TemplateRefused"]  # defined with the sandbox all organiser templates share


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
        text = value.unescape() if isinstance(value, Markup) else str(templating.check_value(value, "{{ … }}"))
        if not text:
            return ""
        templating.spend_output(len(text))
        self.texts.append(text)
        return self.tokens.text(len(self.texts) - 1)


_outputs: ContextVar[_Outputs] = ContextVar("campaign_template_outputs")


@pass_eval_context  # needs a run-time context, so Jinja can't fold constant output at compile time
def _finalize(eval_context, value) -> str:
    return _outputs.get().token_for(value)


_ENVIRONMENTS = {
    BodyFormat.MARKDOWN: templating.Sandbox(autoescape=False, finalize=_finalize),
    BodyFormat.HTML: templating.Sandbox(autoescape=True, finalize=_finalize),
}


def _check_subscriber(node: nodes.Node, parent: nodes.Node | None, available: str = AVAILABLE) -> None:
    """`subscriber` may only be used as `subscriber.name`."""
    if not (isinstance(node, nodes.Name) and node.name == "subscriber" and node.ctx == "load"):
        return
    if not (isinstance(parent, nodes.Getattr) and parent.attr == "name"):
        words = f"subscriber.{parent.attr}" if isinstance(parent, nodes.Getattr) else "subscriber"
        raise templating.refuse_name(words, available)


def _plain_uses(tree: nodes.Template) -> tuple[bool, bool]:
    """Whether the name, and the URLs, are only ever output as they are (`{{ subscriber.name }}`,
    `{{ subscriber.name or "…" }}`, `{{ unsubscribe_url }}`), so their values can be substituted into a finished
    render."""
    parents = templating.with_parents(tree)
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
    """Compile an organiser's template in the shared sandbox, or raise TemplateRefused; returns (template,
    name_plain, urls_plain) as `_plain_uses` describes."""
    environment = _ENVIRONMENTS[BodyFormat(body_format)]
    tree = templating.parse_checked(environment, source, VARIABLES, AVAILABLE, check_node=_check_subscriber)
    name_plain, urls_plain = _plain_uses(tree)
    return templating.compile_checked(environment, tree), name_plain, urls_plain


def sample_names(tree_source: str) -> list[str]:
    """Names to try a template with when it is saved, beyond a usual one and none: the words it compares
    `subscriber.name` with (`{% if subscriber.name == "Zed" %}`), so a branch for one name is tried too."""
    try:
        tree = _ENVIRONMENTS[BodyFormat.MARKDOWN].parse(tree_source)
    except Exception:  # noqa: BLE001 - compile_body has refused it already, with the reason
        return []
    words = {node.value for node in tree.find_all(nodes.Const) if isinstance(node.value, str)}
    return sorted(word for word in words if 0 < len(word) <= 200)[:MAX_SAMPLE_NAMES]


_SUBJECT_SANDBOX = templating.Sandbox(autoescape=False)


def _check_subject_node(node: nodes.Node, parent: nodes.Node | None) -> None:
    _check_subscriber(node, parent, SUBJECT_AVAILABLE)


class SubjectTemplate:
    """A campaign's subject: plain text, or, when it holds template syntax, a template in the shared sandbox that
    may use `subscriber.name` (with the same fallback word as the body). Rendered to one line."""

    def __init__(self, source: str, fallback_name: str = FALLBACK_NAME):
        self.source, self.fallback_name = source, fallback_name
        self.template = None
        if any(mark in source for mark in TEMPLATE_MARKS):
            try:
                tree = templating.parse_checked(
                    _SUBJECT_SANDBOX, source, SUBJECT_VARIABLES, SUBJECT_AVAILABLE, check_node=_check_subject_node
                )
                self.template = templating.compile_checked(_SUBJECT_SANDBOX, tree)
            except TemplateRefused as exc:
                raise TemplateRefused(f"The subject can't be used: {exc}") from None

    @property
    def personal(self) -> bool:
        """Whether the subject differs from one recipient to the next."""
        return self.template is not None

    def render(self, name: str | None) -> str:
        """The subject for a reader called `name` (None: unknown), on one line; TemplateRefused if it fails."""
        if self.template is None:
            return " ".join(self.source.split())
        subscriber = TemplateSubscriber(name=clean_name(name) or UnknownName(self.fallback_name))
        try:
            text = templating.render(self.template, {"subscriber": subscriber})
        except TemplateRefused as exc:
            raise TemplateRefused(f"The subject can't be filled in: {exc}") from None
        return " ".join(text.split())[:SUBJECT_MAX_RENDERED]


def literal_source(text: str, max_length: int) -> str:
    """`text` as template source that shows it exactly (`{{ "…" }}` when it holds template syntax), cut to fit
    `max_length` characters of source."""
    if not any(mark in text for mark in TEMPLATE_MARKS):
        return text[:max_length]
    while True:
        source = '{{ "' + text.replace("\\", "\\\\").replace('"', '\\"') + '" }}'
        if len(source) <= max_length:
            return source
        text = text[: len(text) - (len(source) - max_length)]
