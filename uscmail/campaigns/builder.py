"""Campaign messages, built fast and exactly right.

`prepare()` does everything that is the same for every recipient once per campaign: it renders and sanitises the body,
inlines the CSS, derives the text part, encodes the constant header lines, and quoted-printable-encodes every body line
that carries no personal value. A message is then a few string replacements (name and two links), two signatures,
the encoding of the few lines that changed, and a join of bytes: no `EmailMessage`, no template run, no ORM object.

When the organiser's template does more with a personal value than show it (`{{ subscriber.name | upper }}`,
`{% if subscriber.name %}`), substituting into one finished render would be wrong; such a campaign runs its sandboxed
template for each recipient instead, and reuses the finished render of each shape the template takes.
"""

import hmac
import html
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from flask import current_app

from ..links import PREFERENCES, UNSUBSCRIBE, TokenSigner, external_url, make_preferences_token, make_unsubscribe_token
from ..mail.headers import (
    PLAIN_ADDRESS,
    address,
    ascii_domain,
    mailbox_header,
    phrase_header,
    quoted,
    single_line,
    unstructured_header,
)
from ..mail.mime import (
    CALENDAR_FILENAME,
    HTML_HEADERS,
    TEXT_HEADERS,
    QuotedPrintablePart,
    calendar_part,
    one_line_endings,
)
from . import languages
from .models import Campaign
from .render import CampaignTemplate, MailValues, clean_name, web_version_url

URL_SAFE = re.compile(r"[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True)
class Recipient:
    """One message's addressee, as a batch reads it in one query (no ORM object)."""

    delivery_id: int | None
    email: str
    name: str | None
    public_id: str
    # The reader's language: they get the campaign's version in it, if it has one.
    locale: str | None = None


def _replacer(stand_ins: tuple[str, str, str], values: tuple[str, str, str]) -> Callable[[str], str]:
    (unsubscribe, preferences, name), (unsubscribe_url, preferences_url, name_value) = stand_ins, values

    def fill(line: str) -> str:
        # The name last, so nothing inside a name is ever replaced.
        return (
            line.replace(unsubscribe, unsubscribe_url).replace(preferences, preferences_url).replace(name, name_value)
        )

    return fill


class _Body:
    """The two parts for recipients with a name (or without): substituted into one render, or rendered per shape."""

    def __init__(self, template: CampaignTemplate, web_url: str, named: bool):
        self.template, self.web_url, self.named = template, web_url, named
        tokens = template.tokens
        self.unsubscribe_token, self.preferences_token = tokens.urls["unsubscribe"], tokens.urls["preferences"]
        self.name_token = tokens.name
        self.shapes: dict[str, tuple[QuotedPrintablePart, QuotedPrintablePart]] = {}
        self.html = self.text = None
        if template.name_plain or not named:
            self._substitute_into_one_render()

    def _values(self, name: str | None, unsubscribe_url: str, preferences_url: str) -> MailValues:
        return MailValues(name, unsubscribe_url, preferences_url, self.web_url)

    def _substitute_into_one_render(self) -> None:
        """Render once with stand-ins for the personal values, if a second render with other stand-ins (and a name
        of another length) confirms that substituting them reproduces what the template does."""
        template, tokens = self.template, self.template.tokens
        name_a, name_b = (tokens.name, "M" + tokens.name[::-1] + "M") if self.named else (None, None)
        shape, texts = template.run(self._values(name_a, self.unsubscribe_token, self.preferences_token))
        shape_b, texts_b = template.run(self._values(name_b, "https://b.invalid/u", "https://b.invalid/p"))
        if shape != shape_b or [text.replace(name_a, name_b) if name_a else text for text in texts] != texts_b:
            return
        html_part, text_part = template.draft(shape)
        urls = {"unsubscribe": self.unsubscribe_token, "preferences": self.preferences_token, "web": self.web_url}
        html_urls = dict(urls, web=html.escape(self.web_url))
        html_part = template.fill(html_part, [html.escape(text) for text in texts], html_urls)
        text_part = template.fill(text_part, texts, urls)
        stand_ins = [self.unsubscribe_token, self.preferences_token] + ([tokens.name] if self.named else [])
        personal = re.compile("|".join(re.escape(stand_in) for stand_in in stand_ins))
        self.html, self.text = QuotedPrintablePart(html_part, personal), QuotedPrintablePart(text_part, personal)

    def encode(self, name: str, unsubscribe_url: str, preferences_url: str) -> tuple[list[bytes], list[bytes]]:
        """The encoded text and HTML bodies for one recipient."""
        if self.html is None:
            return self._encode_rendered(name, unsubscribe_url, preferences_url)
        stand_ins = (self.unsubscribe_token, self.preferences_token, self.name_token)
        values = (unsubscribe_url, preferences_url, name)
        html_values = tuple(html.escape(value) for value in values)
        return self.text.encode(_replacer(stand_ins, values)), self.html.encode(_replacer(stand_ins, html_values))

    def _encode_rendered(self, name: str, unsubscribe_url: str, preferences_url: str):
        template = self.template
        shape, texts = template.run(self._values(name or None, unsubscribe_url, preferences_url))
        parts = self.shapes.get(shape)
        if parts is None:
            html_part, text_part = template.draft(shape)
            parts = (
                QuotedPrintablePart(text_part, template.tokens.pattern),
                QuotedPrintablePart(html_part, template.tokens.pattern),
            )
            if len(self.shapes) < CampaignTemplate.MAX_SHAPES:
                self.shapes[shape] = parts
        urls = {"unsubscribe": unsubscribe_url, "preferences": preferences_url, "web": self.web_url}
        html_texts = [html.escape(text) for text in texts]
        html_urls = {key: html.escape(url) for key, url in urls.items()}
        return (
            parts[0].encode(lambda line: one_line_endings(template.fill(line, texts, urls))),
            parts[1].encode(lambda line: one_line_endings(template.fill(line, html_texts, html_urls))),
        )


class PreparedCampaign:
    """A campaign ready to send: `build(recipient)` returns the complete message bytes (CRLF line endings) for
    `smtplib.SMTP.sendmail(prepared.envelope_from, [recipient.email], data)`, with the SMTPUTF8 mail option when
    `needs_smtputf8(recipient)`."""

    def __init__(self, campaign: Campaign, test: bool = False):
        self.template = CampaignTemplate.for_campaign(campaign)
        self.test = test
        self.public_id = campaign.public_id or secrets.token_urlsafe(16)
        self.envelope_from = campaign.from_email
        self.from_name = single_line(campaign.from_name or "")
        self.reply_to = campaign.reply_to
        self.subject_prefix = "[Test] " if test else ""
        self.subject = self.subject_prefix + self.template.subject.render(None)
        self.domain = ascii_domain(campaign.from_email)
        self.message_id_key = current_app.config["SECRET_KEY"].encode() + b"|message-id"
        self.list_ids = sorted(campaign.list_ids)
        self.campaign_id = None if test else campaign.id
        self.web_url = web_version_url(campaign)
        first_list = campaign.lists[0] if campaign.lists else None
        self.list_id = (
            None if first_list is None else (single_line(first_list.name), f"<{first_list.slug}.{self.domain}>")
        )
        kind = getattr(campaign.kind, "value", campaign.kind) or "newsletter"
        self.feedback_id = f"{campaign.id or 0}:{kind}:uscmail:{self.domain}"
        self.calendar = campaign.calendar
        self.calendar_part = calendar_part(campaign.calendar) if campaign.calendar else b""
        self._prepare_links()
        self._prepare_headers()
        self.bodies = {True: _Body(self.template, self.web_url, named=True)}
        self.bodies[False] = _Body(self.template, self.web_url, named=False)
        self._date_second, self._date = 0, ""

    def _prepare_links(self) -> None:
        marker = "T0KEN"
        self.unsubscribe_prefix = external_url("subscriptions.unsubscribe", token=marker).removesuffix(marker)
        self.preferences_prefix = external_url("subscriptions.preferences", token=marker).removesuffix(marker)
        # What follows the public id in the signed payload: the lists, then the campaign (so its unsubscribes can be
        # counted); a test copy names no campaign (its links match nobody anyway).
        self.payload_tail = json.dumps(self.list_ids, separators=(",", ":"))
        if self.campaign_id is not None:
            self.payload_tail += f",{int(self.campaign_id)}"
        self.unsubscribe_signer, self.preferences_signer = TokenSigner(UNSUBSCRIBE), TokenSigner(PREFERENCES)
        sample = secrets.token_urlsafe(16)
        if self.personal_urls(sample) != self._links_from_links_module(sample):
            current_app.logger.warning("campaign links: fast signing differs from uscmail.links; using uscmail.links")
            self.unsubscribe_signer = self.preferences_signer = None

    def _links_from_links_module(self, public_id: str) -> tuple[str, str]:
        return (
            external_url(
                "subscriptions.unsubscribe",
                token=make_unsubscribe_token(public_id, self.list_ids, self.campaign_id),
            ),
            external_url("subscriptions.preferences", token=make_preferences_token(public_id)),
        )

    def personal_urls(self, public_id: str) -> tuple[str, str]:
        """The recipient's unsubscribe and preference-centre links (the same as uscmail.tokens makes, faster)."""
        if self.unsubscribe_signer is None or not URL_SAFE.match(public_id):
            return self._links_from_links_module(public_id)
        return (
            self.unsubscribe_prefix + self.unsubscribe_signer.sign(f'["{public_id}",{self.payload_tail}]'),
            self.preferences_prefix + self.preferences_signer.sign(f'"{public_id}"'),
        )

    def _prepare_headers(self) -> None:
        self.from_header = mailbox_header("From", self.from_name, self.envelope_from).encode()
        self.subject_header = unstructured_header("Subject", self.subject).encode()
        self.personal_subject = self.template.subject.personal
        fixed = ""
        if self.reply_to:
            fixed += f"Reply-To: {self.reply_to}\r\n"
        fixed += "MIME-Version: 1.0\r\n"
        if self.list_id:
            fixed += phrase_header("List-Id", *self.list_id)
        fixed += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        fixed += f"Feedback-ID: {self.feedback_id}\r\nPrecedence: bulk\r\nAuto-Submitted: no\r\n"
        self.fixed_headers = fixed.encode()
        self.ascii_headers = self.envelope_from.isascii() and (self.reply_to or "").isascii()

    def needs_smtputf8(self, recipient: Recipient) -> bool:
        """Whether the message must go with SMTPUTF8 (an address that isn't ASCII; RFC 6531 and 6532)."""
        return not (recipient.email.isascii() and self.envelope_from.isascii() and (self.reply_to or "").isascii())

    def message_id(self, recipient: Recipient) -> str:
        """`<campaign.tag@domain>`, the tag a keyed hash of the delivery: stable for the delivery, but it does not
        count deliveries, so recipients cannot read the size of the list from it. Random for tests."""
        if recipient.delivery_id is None or self.test:
            return f"<{self.public_id}.test-{secrets.token_hex(8)}@{self.domain}>"
        tag = hmac.digest(self.message_id_key, str(recipient.delivery_id).encode(), "sha256").hex()[:20]
        return f"<{self.public_id}.{tag}@{self.domain}>"

    def date(self) -> str:
        """The Date header's value (RFC 5322), computed at most once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, format_datetime(datetime.fromtimestamp(now, UTC))
        return self._date

    def subject_for(self, name: str) -> str:
        """The subject this reader gets (the same for everyone unless it uses subscriber.name)."""
        if not self.personal_subject:
            return self.subject
        return self.subject_prefix + self.template.subject.render(name or None)

    def build(self, recipient: Recipient) -> bytes:
        """The complete message for one recipient."""
        if not PLAIN_ADDRESS.match(recipient.email) or not self.ascii_headers:
            return self.build_with_stdlib(recipient)
        name = clean_name(recipient.name)
        unsubscribe_url, preferences_url = self.personal_urls(recipient.public_id)
        text_body, html_body = self.bodies[bool(name)].encode(name, unsubscribe_url, preferences_url)
        boundary = "=_" + os.urandom(12).hex()  # "=_" never occurs in quoted-printable text
        personal = (
            mailbox_header("To", name, recipient.email)
            + f"Date: {self.date()}\r\nMessage-ID: {self.message_id(recipient)}\r\n"
        )
        # One line: a folded URL would break some readers.
        structure = f"List-Unsubscribe: <{unsubscribe_url}>\r\n"
        if self.calendar_part:
            # multipart/mixed: the text and HTML alternatives, then the calendar invitation as an attachment.
            structure += (
                f'Content-Type: multipart/mixed;\r\n boundary="{boundary}m"\r\n\r\n--{boundary}m\r\n'
                f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            )
            ending = f"\r\n--{boundary}--\r\n\r\n--{boundary}m\r\n".encode() + self.calendar_part
            ending += f"\r\n--{boundary}m--\r\n".encode()
        else:
            structure += f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            ending = f"\r\n--{boundary}--\r\n".encode()
        return b"".join(
            [
                self.from_header,
                personal.encode(),
                unstructured_header("Subject", self.subject_for(name)).encode()
                if self.personal_subject
                else self.subject_header,
                self.fixed_headers,
                structure.encode(),
                TEXT_HEADERS,
                *text_body,
                f"\r\n--{boundary}\r\n".encode(),
                HTML_HEADERS,
                *html_body,
                ending,
            ]
        )

    def build_with_stdlib(self, recipient: Recipient) -> bytes:
        """The same message built with the standard library: for addresses that aren't plain ASCII (SMTPUTF8)."""
        name = clean_name(recipient.name)
        unsubscribe_url, preferences_url = self.personal_urls(recipient.public_id)
        mail = self.template.render(MailValues(name or None, unsubscribe_url, preferences_url, self.web_url))
        message_policy = policy.SMTPUTF8 if self.needs_smtputf8(recipient) else policy.SMTP
        message = EmailMessage(policy=message_policy)
        message["From"] = address(self.from_name, self.envelope_from)
        message["To"] = address(name, recipient.email)
        message["Subject"] = self.subject_for(name)
        message["Date"] = self.date()
        message["Message-ID"] = self.message_id(recipient)
        if self.reply_to:
            message["Reply-To"] = self.reply_to
        if self.list_id:
            message["List-Id"] = f"{quoted(self.list_id[0])} {self.list_id[1]}"
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Feedback-ID"] = self.feedback_id
        message["Precedence"] = "bulk"
        message["Auto-Submitted"] = "no"
        message.set_content(mail.text, subtype="plain", charset="utf-8", cte="quoted-printable")
        message.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
        if self.calendar:
            message.add_attachment(
                self.calendar.encode(),
                maintype="text",
                subtype="calendar",
                filename=CALENDAR_FILENAME,
                params={"method": "PUBLISH", "charset": "utf-8"},
            )
        return message.as_bytes(policy=message_policy)


class PreparedLanguages:
    """A campaign ready to send in each of its languages (`languages.versions`): every reader gets the version in
    their language, else the campaign's own. The same `build` and `needs_smtputf8` as one PreparedCampaign."""

    def __init__(self, campaign: Campaign, test: bool = False):
        self.versions = {
            locale: PreparedCampaign(version, test=test) for locale, version in languages.versions(campaign).items()
        }
        self.default = next(iter(self.versions.values()))

    def __getattr__(self, name: str):
        # What is the same in every version (sender, links, headers) is read off the campaign's own.
        return getattr(self.default, name)

    def for_reader(self, recipient: Recipient) -> PreparedCampaign:
        """The version this reader gets."""
        return self.versions.get(recipient.locale or "", self.default)

    def build(self, recipient: Recipient) -> bytes:
        """The complete message for one recipient, in their language."""
        return self.for_reader(recipient).build(recipient)

    def needs_smtputf8(self, recipient: Recipient) -> bool:
        """Whether the message must go with SMTPUTF8 (the same in every language)."""
        return self.default.needs_smtputf8(recipient)


def prepare(campaign: Campaign, *, test: bool = False) -> PreparedLanguages:
    """Everything about a campaign's messages that is the same for every recipient of each language; once per
    campaign and worker process. Raises TemplateRefused if a version's body can't be rendered."""
    return PreparedLanguages(campaign, test=test)
