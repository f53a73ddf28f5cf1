"""Campaign bodies: the organiser's Markdown or HTML, personalised in a sandbox, sanitised, framed in the mail layout.

What organiser templates may use, and the sandbox that runs them, are in `sandbox`.

Whatever a `{{ … }}` produces is text, never markup: each value is replaced by a token while the body is converted
from Markdown, sanitised and framed, and put back at the very end, HTML-escaped in the HTML part and as it is in the
text part. A name like `<x@y>` or `*Bob*` therefore can't become a link, emphasis or a tag, and the expensive steps run
once per shape the template takes, not once per recipient (see `CampaignTemplate`).
"""

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import css_inline
import lxml.html
import nh3
from flask import current_app, render_template
from flask_babel import force_locale
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from markdown_it import MarkdownIt
from markupsafe import Markup

from .. import templating
from ..i18n import language
from ..links import external_url
from ..media import mailimages
from .models import BodyFormat, Campaign

# Other modules import TemplateRefused, MailValues and clean_name from here.
from .sandbox import (
    FALLBACK_NAME,
    FALLBACK_NAMES,
    MailValues,
    SubjectTemplate,
    TemplateRefused,
    TemplateSubscriber,
    Tokens,
    UnknownName,
    _link,
    _Outputs,
    _outputs,
    clean_name,
    compile_body,
    sample_names,
)

SAMPLE_NAME = "Alex"
PREVIEW_TOKEN = "preview"  # noqa: S105 - not a secret; unsigned, so preview links open the "link not valid" page


@dataclass
class RenderedMail:
    """One campaign mail as the recipient sees it."""

    subject: str
    html: str
    text: str


# "breaks": a single line break inside a paragraph stays one (a sign-off on its own line), as organisers expect.
MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl", "dt", "em",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "mark", "ol", "p", "pre",
    "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan", "style"},
    "th": {"colspan", "rowspan", "style"},
    "p": {"style"},
    # Direction and language on any element, so a Uyghur paragraph in an English mail runs right to left (and is read
    # aloud in Uyghur); values are checked in _attribute_filter.
    "*": {"dir", "lang"},
}
DIRECTIONS = frozenset({"ltr", "rtl", "auto"})
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
# Attributes a mail client never fetches or follows, where a name may appear.
TEXT_ATTRIBUTES = frozenset({"alt", "title"})
# Characters that, just before a personal link in the text, make it part of some other address.
ADDRESS_CHARACTERS = frozenset("/.?=&#%@\\")
PERSONAL_TEXT_IN_ADDRESS = (
    "The template puts subscriber.name or other text into a link or image address; personal details can only "
    "appear in the text. Links can use unsubscribe_url, preferences_url and web_version_url as they are."
)
PERSONAL_LINK_MISPLACED = (
    "unsubscribe_url and preferences_url are personal: use each only as a whole link target "
    '(<a href="{{ unsubscribe_url }}"> or [words]({{ unsubscribe_url }})) or on its own in the text, never inside '
    "another address, an image or a style, and never changed by a filter or joined to other text."
)


def image_hosts() -> frozenset[str]:
    """The hosts campaign mail may show images from (MAIL_IMAGE_HOSTS); none by default."""
    return frozenset(host.lower() for host in current_app.config.get("MAIL_IMAGE_HOSTS", ()))


def image_allowed(src: str, hosts: frozenset[str]) -> bool:
    """Whether an image address may stay: an image of our media library (on our own site), or https on an allowed
    host. Every recipient's mail client fetches it, telling that host who opened the mail and when."""
    if mailimages.library_public_id(src):
        return True
    try:
        address = urlsplit(src.strip())
        host = (address.hostname or "").lower()
    except ValueError:
        return False
    return address.scheme.lower() == "https" and not address.username and host in hosts


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not image_allowed(value, image_hosts()):
        return None
    if attribute == "dir":
        direction = value.strip().lower()
        return direction if direction in DIRECTIONS else None
    if attribute == "lang":
        return value.strip() if LANGUAGE_TAG.fullmatch(value.strip()) else None
    return value


# An image whose address was dropped: nothing left to show but a broken-image box.
IMAGE_WITHOUT_ADDRESS = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")


def sanitise(fragment: str) -> str:
    """Keep ordinary formatting, links (http, https, mailto), images from the allowed hosts (MAIL_IMAGE_HOSTS, none by
    default) and valid `dir` and `lang` on any element; drop scripts, styles, frames, forms, event handlers and every
    other attribute."""
    cleaned = nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        filter_style_properties={"text-align"},
    )
    return IMAGE_WITHOUT_ADDRESS.sub("", cleaned)


_TEXT_CSS = dict(CSS_PROFILES["strict"])
for _tag in ("a", "b", "code", "del", "em", "i", "mark", "s", "small", "span", "strong", "sub", "sup", "u"):
    _TEXT_CSS[_tag] = HtmlElement(whitespace=None)  # inherit, so <pre><code> keeps its line breaks
_TEXT_CSS["blockquote"] = HtmlElement(display=Display.block, margin_before=1, margin_after=1, padding_inline=4)
TEXT_CONFIG = ParserConfig(css=_TEXT_CSS, display_images=True)


def html_to_text(fragment: str) -> str:
    """Plain text of sanitised HTML; a link whose words differ from its address is followed by `<address>`."""
    if not fragment.strip():
        return ""
    tree = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for link in tree.iter("a"):
        href = link.get("href")
        words = " ".join(link.text_content().split())
        if href and words not in (href, href.removeprefix("mailto:")):
            link.tail = f" <{href}>" + (link.tail or "")
    text = Inscriptis(tree, TEXT_CONFIG).get_text()
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def web_version_url(campaign: Campaign) -> str:
    """The public address of the campaign's web version, which carries no personal data."""
    return external_url("archive.web_version", public_id=campaign.public_id or "preview")


class CampaignTemplate:
    """A campaign's body compiled once, able to render the whole mail for any values.

    A render runs the sandboxed template (cheap) to learn its shape: the output with every value replaced by a token.
    Markdown, sanitising, layout, CSS inlining and the text part (expensive) run once per shape and are cached; the
    values are then substituted in.
    """

    MAX_SHAPES = 256

    def __init__(
        self,
        body: str,
        body_format: BodyFormat,
        *,
        subject: str = "",
        preheader: str = "",
        contact: str = "",
        locale: str = "en",
    ):
        self.fallback_name = FALLBACK_NAMES.get(locale, FALLBACK_NAME)
        self.subject = SubjectTemplate(subject, self.fallback_name)
        self.body_format = BodyFormat(body_format)
        self.template, self.name_plain, self.urls_plain = compile_body(body, self.body_format)
        if not self.urls_plain:
            # A personal link made into text (joined, filtered, sliced, assigned) could be put anywhere.
            raise TemplateRefused(PERSONAL_LINK_MISPLACED)
        self.tokens = Tokens(body)
        # The layout is rendered once for everyone: the subject in it is the one a reader without a name gets.
        self.locale = locale
        self.layout = {
            "subject": self.subject.render(None),
            "preheader": preheader,
            "contact": contact,
            "lang": language(locale).tag,
            "dir": language(locale).direction,
        }
        self.drafts: dict[tuple[str, bool], tuple[str, str]] = {}

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> "CampaignTemplate":
        """The template of a campaign, saved or not."""
        return cls(
            campaign.body or "",
            campaign.body_format or BodyFormat.MARKDOWN,
            subject=campaign.subject or "",
            preheader=campaign.preheader or "",
            contact=campaign.reply_to or campaign.from_email or "",
            locale=getattr(campaign, "locale", None) or "en",
        )

    def run(self, values: MailValues) -> tuple[str, list[str]]:
        """The template's shape for these values, and the texts its tokens stand for; TemplateRefused on failure."""
        name = clean_name(values.name)
        subscriber = TemplateSubscriber(name=name or UnknownName(self.fallback_name))
        outputs = _Outputs(self.tokens)
        reset = _outputs.set(outputs)
        try:
            shape = templating.render(
                self.template,
                {
                    "subscriber": subscriber,
                    "unsubscribe_url": _link(values.unsubscribe_url, "unsubscribe"),
                    "preferences_url": _link(values.preferences_url, "preferences"),
                    "web_version_url": _link(values.web_version_url, "web"),
                },
            )
        finally:
            _outputs.reset(reset)
        return shape, outputs.texts

    def unsafe_fragment(self, shape: str) -> str:
        """The body for a shape as HTML, before sanitising."""
        return MARKDOWN.render(shape) if self.body_format is BodyFormat.MARKDOWN else shape

    def address_problem(self, fragment: str) -> str | None:
        """Why this HTML would hand a personal value to a site a mail client fetches or follows, or None.

        Personal links may be the whole target of a link, or stand on their own in the text; a name may be in the
        text and in alt or title, never in an address."""
        if not fragment.strip():
            return None
        tree = lxml.html.fragment_fromstring(fragment, create_parent="div")
        personal = self.tokens.personal_url_pattern
        for node in tree.iter():
            is_element = isinstance(node.tag, str)
            for attribute, value in node.attrib.items() if is_element else ():
                if personal.search(value) and not (attribute == "href" and personal.fullmatch(value.strip())):
                    return PERSONAL_LINK_MISPLACED
                if attribute not in TEXT_ATTRIBUTES and self.tokens.text_pattern.search(value):
                    return PERSONAL_TEXT_IN_ADDRESS
            for text in (node.text if is_element else None, node.tail):
                for match in personal.finditer(text or ""):
                    word_before = re.search(r"\S*$", text[: match.start()])[0]
                    if ADDRESS_CHARACTERS.intersection(word_before):
                        return PERSONAL_LINK_MISPLACED
        return None

    def check_shape(self, shape: str) -> None:
        """Refuse a shape whose HTML puts personal values into addresses, or shows images from other sites."""
        fragment = self.unsafe_fragment(shape)
        problem = self.address_problem(fragment)
        if problem:
            raise TemplateRefused(problem)
        if not fragment.strip():
            return
        hosts = image_hosts()
        images = lxml.html.fragment_fromstring(fragment, create_parent="div").findall(".//img")
        library_ids = {mailimages.library_public_id(image.get("src") or "") for image in images} - {None}
        if len(mailimages.services.images_by_public_id(library_ids)) < len(library_ids):
            raise TemplateRefused(
                "An image in the body is no longer in the media library (it was deleted, or its address was changed). "
                "Insert it again from the library."
            )
        for image in images:
            src = (image.get("src") or "").strip()
            if not image_allowed(src, hosts):
                where = urlsplit(src).hostname if src.lower().startswith("https://") else None
                raise TemplateRefused(
                    f"Images from {where or 'other places'} can't be used in campaign mail: every reader's mail "
                    "client would fetch them, telling that site who opened the mail. "
                    + (f"Images may come from {', '.join(sorted(hosts))}." if hosts else "No image hosts are allowed.")
                    + " Upload the image to the media library and insert it from there instead."
                )

    def fragment(self, shape: str) -> str:
        """The sanitised HTML body for a shape; TemplateRefused if it would still hand a personal value to a site."""
        fragment = mailimages.fit_library_images(sanitise(self.unsafe_fragment(shape)))
        problem = self.address_problem(fragment)
        if problem:
            raise TemplateRefused(problem)
        return fragment

    def draft(self, shape: str, web_version: bool = False) -> tuple[str, str]:
        """The whole mail (HTML with CSS inlined, and text) for a shape, tokens still in place; the layout's words
        (footer, links) in the language of this version."""
        key = (shape, web_version)
        if key in self.drafts:
            return self.drafts[key]
        fragment = self.fragment(shape)
        urls = self.tokens.urls
        context = dict(
            self.layout,
            body_html=Markup(fragment),  # noqa: S704 - sanitised by nh3 just above
            body_text=html_to_text(fragment),
            unsubscribe_url=urls["unsubscribe"],
            preferences_url=urls["preferences"],
            web_version_url=urls["web"],
            subscribe_url=external_url("subscriptions.subscribe"),
            web_version=web_version,
        )
        with force_locale(self.locale):
            html_part = INLINER.inline(render_template("email/campaign.html", **context))
            text_part = render_template("email/campaign.txt", **context).strip("\n") + "\n"
        if len(self.drafts) < self.MAX_SHAPES:
            self.drafts[key] = (html_part, text_part)
        return html_part, text_part

    def fill(self, content: str, texts: list[str], urls: dict[str, str]) -> str:
        """Put values in place of their tokens (the caller escapes them for HTML)."""
        return self.tokens.pattern.sub(lambda match: texts[int(match[1])] if match[1] else urls[match[2]], content)

    def render(self, values: MailValues) -> RenderedMail:
        """The finished mail for these values."""
        shape, texts = self.run(values)
        html_part, text_part = self.draft(shape, values.web_version)
        urls = {"unsubscribe": values.unsubscribe_url, "preferences": values.preferences_url}
        urls["web"] = values.web_version_url
        html_urls = {key: html.escape(url) for key, url in urls.items()}
        return RenderedMail(
            subject=self.subject.render(values.name),
            html=self.fill(html_part, [html.escape(text) for text in texts], html_urls),
            text=self.fill(text_part, texts, urls),
        )


def render_mail(campaign: Campaign, values: MailValues) -> RenderedMail:
    """Render one mail of a campaign, from scratch."""
    return CampaignTemplate.for_campaign(campaign).render(values)


def render_preview(campaign: Campaign, name: str | None = SAMPLE_NAME) -> RenderedMail:
    """The mail as a subscriber called `name` would get it; its personal links lead to a "link not valid" page.
    Works on an unsaved campaign."""
    unsubscribe_url = external_url("subscriptions.unsubscribe", token=PREVIEW_TOKEN)
    preferences_url = external_url("subscriptions.preferences", token=PREVIEW_TOKEN)
    return render_mail(campaign, MailValues(name, unsubscribe_url, preferences_url, web_version_url(campaign)))


def render_web_version(campaign: Campaign) -> RenderedMail:
    """The public copy: no name, no personal link; the footer points to the signup page instead."""
    subscribe_url = external_url("subscriptions.subscribe")
    values = MailValues(
        name=None,
        unsubscribe_url=subscribe_url,
        preferences_url=subscribe_url,
        web_version_url=web_version_url(campaign),
        web_version=True,
    )
    return render_mail(campaign, values)


def check_template(body: str, body_format: BodyFormat | str | None = None) -> None:
    """Refuse, with a message for the organiser, a body that the sandbox won't run, that fails when filled in with
    sample values (with a name, without, and with each word the template compares the name with), that puts
    personal values where a mail client would hand them to another site, or that shows images from hosts not in
    MAIL_IMAGE_HOSTS. All the samples together get a few render times at most.

    Without `body_format`, the body must pass as Markdown and as HTML."""
    formats = [BodyFormat(body_format)] if body_format else list(BodyFormat)
    links = ("https://example.org/u/sample", "https://example.org/p/sample", "https://example.org/w")
    names = [SAMPLE_NAME, None, *sample_names(body)]
    samples = [MailValues(name, *links) for name in names]
    with templating.time_limit(3 * templating.render_seconds()):
        for each_format in formats:
            template = CampaignTemplate(body, each_format)
            for values in samples:
                shape, _ = template.run(values)
                template.check_shape(shape)


def check_subject(subject: str) -> None:
    """Refuse, with a message for the organiser, a subject template that uses anything but `subscriber.name`, or
    that fails for a usual name, for none, or for a word it compares the name with."""
    template = SubjectTemplate(subject)
    if not template.personal:
        return
    with templating.time_limit(3 * templating.render_seconds()):
        for name in [SAMPLE_NAME, None, *sample_names(subject)]:
            template.render(name)
