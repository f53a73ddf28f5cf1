"""Campaign bodies as recipients see them: Markdown or HTML, sanitised, personalised in a sandbox, in the layout."""

import re

import lxml.html
import pytest
import sqlalchemy as sa

from tests.factories import make_campaign, newsletter
from uscmail.campaigns import render
from uscmail.campaigns.models import BodyFormat, Campaign
from uscmail.campaigns.render import MailValues, TemplateRefused
from uscmail.validation import InvalidInput

AVAILABLE = "You can use subscriber.name, unsubscribe_url, preferences_url and web_version_url."
MARKDOWN_BODY = """# News for {{ subscriber.name }}

Dear {{ subscriber.name }}, the *protest* is on the **5th** at ~~11~~ noon.
Read [the report](https://example.org/report) or see <https://example.org/photos>.

- Bring a placard
- Bring a friend

| Where | When |
|:------|-----:|
| Portland Place | 12:00 |

```
keep   these
    spaces
```

[Stop these emails]({{ unsubscribe_url }})
"""
HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    'Ayşe "Gül" <x@y>',
    "*Bob* [click](https://evil.example) `code` _under_",
    "{{ config }} {% include 'x' %}",
    "Tom & Jerry's",
]


def visible_text(page: str) -> str:
    """The words a reader sees in the HTML part: no head, no hidden preheader."""
    page = re.sub(r"(</(?:p|h[1-6]|li|div|td|th|pre|blockquote)>|<br ?/?>)", r"\1 ", page)
    tree = lxml.html.document_fromstring(page)
    for hidden in tree.xpath("//head | //div[contains(@style, 'display:none')]"):
        hidden.drop_tree()
    return " ".join(tree.text_content().split())


def words(text: str) -> set[str]:
    text = re.sub(r"(?:https?://|mailto:)\S+", " ", text)
    return set(re.findall(r"\w+", text))


# Markdown, HTML and the layout


def test_markdown_body_becomes_formatted_html_inside_the_campaign_layout(db):
    campaign = make_campaign(
        "Protest on the 5th",
        MARKDOWN_BODY,
        body_format=BodyFormat.MARKDOWN,
        from_email="news@example.org",
        preheader="Portland Place at noon",
        reply_to="info@example.org",
    )

    mail = render.render_preview(campaign, name="Alex")

    page = mail.html
    assert mail.subject == "Protest on the 5th"
    assert re.search(r"<h1[^>]*>News for Alex</h1>", page)
    assert re.search(r"<em[^>]*>protest</em>", page) and re.search(r"<strong[^>]*>5th</strong>", page)
    assert re.search(r"<s[^>]*>11</s>", page)
    assert re.search(r'<a href="https://example.org/report" rel="noopener noreferrer"[^>]*>the report</a>', page)
    assert re.search(r"<th[^>]*text-align: ?right[^>]*>When</th>", page)
    assert "keep   these\n    spaces" in page
    # The layout: brand, hidden preheader, footer links, contact address, phone and dark-mode friendly.
    assert "Uyghur Solidarity Campaign UK" in page
    assert re.search(r'<div style="display:none[^"]*">Portland Place at noon</div>', page)
    assert '<a href="https://lists.uscuk.test/unsubscribe/preview"' in page
    assert '<a href="https://lists.uscuk.test/preferences/preview"' in page
    assert f'<a href="https://lists.uscuk.test/archive/{campaign.public_id}"' in page
    assert ">View in your browser</a>" in page and ">Unsubscribe</a>" in page
    assert 'href="mailto:info@example.org"' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<meta name="color-scheme" content="light dark">' in page
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert "@media (prefers-color-scheme: dark)" in style
    # CSS is inlined for mail clients that drop <style>.
    assert re.search(r'<p style="margin: 0 0 16px;">Dear Alex', page)
    assert "<script" not in page and "<link" not in page


def test_the_text_part_is_derived_from_the_same_html_with_usable_links(db):
    campaign = make_campaign(
        "Protest on the 5th", MARKDOWN_BODY, body_format=BodyFormat.MARKDOWN, from_email="news@example.org"
    )

    text = render.render_preview(campaign, name="Alex").text

    assert text.startswith("News for Alex\n\nDear Alex, the protest is on the 5th at 11 noon.")
    assert "Read the report <https://example.org/report> or see https://example.org/photos." in text
    assert "  * Bring a placard\n  * Bring a friend" in text
    assert "keep   these\n    spaces" in text
    assert "Stop these emails <https://lists.uscuk.test/unsubscribe/preview>" in text
    assert "\n-- \nUyghur Solidarity Campaign UK\n" in text
    assert "Unsubscribe: https://lists.uscuk.test/unsubscribe/preview" in text
    assert "Change your preferences: https://lists.uscuk.test/preferences/preview" in text
    assert f"View in your browser: https://lists.uscuk.test/archive/{campaign.public_id}" in text
    assert "<" not in text.replace("<https://", "")


def test_a_single_line_break_in_markdown_stays_a_line_break_in_both_parts(db):
    body = "Thank you for coming, {{ subscriber.name }}.\n\nIn solidarity,\nUSC-UK\n\nNext paragraph."
    campaign = make_campaign("Thanks", body, body_format=BodyFormat.MARKDOWN)

    mail = render.render_preview(campaign, name="Alex")

    assert re.search(r"<p[^>]*>In solidarity,<br>\s*USC-UK</p>", mail.html)
    assert "Thank you for coming, Alex.\n\nIn solidarity,\nUSC-UK\n\nNext paragraph." in mail.text
    # Two lines, each as written: no space carried to the start of the second.
    assert "\n USC-UK" not in mail.text and "In solidarity, USC-UK" not in mail.text


@pytest.mark.parametrize("body_format", [BodyFormat.MARKDOWN, BodyFormat.HTML])
def test_the_text_part_has_the_same_words_as_the_html_part(db, body_format):
    body = MARKDOWN_BODY
    if body_format is BodyFormat.HTML:
        body = "<h2>Hello {{ subscriber.name }}</h2><p>See <a href='https://example.org/r'>it</a> &amp; <em>act</em>."
    campaign = make_campaign(
        "Protest on the 5th",
        body,
        body_format=body_format,
        from_email="news@example.org",
        preheader="Hidden summary words",
    )

    mail = render.render_preview(campaign, name="Zoë")

    assert words(visible_text(mail.html)) == words(mail.text)
    assert "Zoë" in words(mail.text)


def test_html_bodies_are_sanitised(db):
    body = (
        '<p onclick="steal()">Hello <b>{{ subscriber.name }}</b></p>'
        "<script>alert(1)</script><style>p { display: none }</style>"
        '<a href="javascript:alert(1)">js link</a> <a href="https://example.org/ok">ok link</a>'
        '<a href="mailto:info@example.org">mail us</a> <a href="/relative">relative</a>'
        '<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input name="q"></form>'
        '<div style="position:fixed;top:0">overlay</div><object data="x"></object>'
    )
    campaign = make_campaign("Protest on the 5th", body, body_format=BodyFormat.HTML, from_email="news@example.org")

    page = render.render_preview(campaign).html

    for forbidden in ("<script", "alert(1)", "onclick", "onerror", "javascript:", "<iframe", "<form", "<input",
                      "<object", "position:fixed", "tracker.example", "display: none", "/relative"):  # fmt: skip
        assert forbidden not in page
    assert re.search(r"Hello <b[^>]*>Alex</b>", page)
    assert '<a href="https://example.org/ok" rel="noopener noreferrer"' in page
    assert '<a href="mailto:info@example.org" rel="noopener noreferrer"' in page
    assert ">js link</a>" in page and ">overlay</div>" in page


def test_markdown_cannot_smuggle_html_or_script_links(db):
    body = "Hi <script>alert(1)</script> [bad](javascript:alert(1)) <img src=x onerror=alert(1)>"
    campaign = make_campaign("Protest on the 5th", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")

    page = render.render_preview(campaign).html

    assert "<script" not in page and "<img" not in page and 'href="javascript' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("body_format", [BodyFormat.MARKDOWN, BodyFormat.HTML])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_personal_values_are_text_never_markup(db, body_format, name):
    body = "Dear {{ subscriber.name }}, welcome.\n\n{{ subscriber.name }}"
    if body_format is BodyFormat.HTML:
        body = "<p>Dear {{ subscriber.name }}, welcome.</p><p title='{{ subscriber.name }}'>{{ subscriber.name }}</p>"
    campaign = make_campaign("Protest on the 5th", body, body_format=body_format, from_email="news@example.org")

    mail = render.render_preview(campaign, name=name)

    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    escaped = escaped.replace("'", "&#x27;")
    assert f"Dear {escaped}, welcome." in mail.html
    fragment = mail.html.split('class="content"')[1].split('class="footer"')[0]
    assert "<script" not in fragment and "<em" not in fragment and "<code" not in fragment
    assert "evil.example" not in re.findall(r'href="([^"]*)"', fragment)
    assert f"Dear {name}, welcome." in mail.text
    assert mail.text.count(name) == 2


def test_a_name_with_line_breaks_and_control_characters_is_shown_on_one_line(db):
    campaign = make_campaign(
        "Protest on the 5th",
        "Dear {{ subscriber.name }}!",
        body_format=BodyFormat.MARKDOWN,
        from_email="news@example.org",
    )

    mail = render.render_preview(campaign, name="  Eve\r\nBcc: x@y\x00\t ")

    assert "Dear Eve Bcc: x@y!" in mail.text
    assert "Dear Eve Bcc: x@y!" in mail.html


@pytest.mark.parametrize(
    ("body", "with_name", "without_name"),
    [
        ("Dear {{ subscriber.name }}!", "Dear Alex!", "Dear supporter!"),
        ('Dear {{ subscriber.name or "comrade" }}!', "Dear Alex!", "Dear comrade!"),
        ('Dear {{ subscriber.name | default("supporter", true) }}!', "Dear Alex!", "Dear supporter!"),
        (
            "{% if subscriber.name %}Dear {{ subscriber.name }}!{% else %}Hello all!{% endif %}",
            "Dear Alex!",
            "Hello all!",
        ),
        ("Dear {{ subscriber.name | upper }}!", "Dear ALEX!", "Dear SUPPORTER!"),
    ],
)
def test_the_name_falls_back_to_supporter_or_to_the_organisers_word(db, body, with_name, without_name):
    campaign = make_campaign("Protest on the 5th", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")

    assert with_name in render.render_preview(campaign, name="Alex").text
    assert without_name in render.render_preview(campaign, name=None).text
    assert without_name in render.render_preview(campaign, name="   ").text


# The sandbox


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{{ config }}", "`config`"),
        ("{{ config.SECRET_KEY }}", "`config`"),
        ("{{ ''.__class__ }}", "`__class__`"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "`__class__`"),
        ("{{ subscriber.name['__class__'] }}", "`__class__`"),
        ("{{ self }}", "`self`"),
        ("{{ self.__init__ }}", "`self`"),
        ("{{ cycler.__init__.__globals__ }}", "`cycler`"),
        ("{{ range(10) }}", "`range`"),
        ("{{ request.args }}", "`request`"),
        ("{{ subscriber.email }}", "`subscriber.email`"),
        ("{{ subscriber }}", "`subscriber`"),
        ("Hello {{ unknown_thing }}", "`unknown_thing`"),
        ("{% include 'email/_layout.html' %}", "`{% include %}`"),
        ("{% import 'email/_layout.html' as layout %}", "`{% import %}`"),
        ("{% from 'email/_layout.html' import x %}", "`{% from … import %}`"),
        ("{% extends 'email/_layout.html' %}", "`{% extends %}`"),
        ("{% filter upper %}{{ subscriber.name }}{% endfilter %}", "`{% filter %}`"),
        ("{% set x %}{{ subscriber.name }}{% endset %}{{ x|upper }}", "`{% set %}…{% endset %}`"),
        ("{% macro m() %}x{% endmacro %}{{ m() }}", "`{% macro %}`"),
    ],
)
def test_templates_reaching_outside_the_sandbox_are_refused_when_saved(db, body, named):
    with pytest.raises(InvalidInput) as refused:
        make_campaign("Protest on the 5th", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")

    assert isinstance(refused.value, TemplateRefused)
    assert named in str(refused.value)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0


def test_the_refusal_names_the_variable_and_what_is_available(db):
    with pytest.raises(TemplateRefused) as refused:
        render.check_template("Hello {{ config }}", BodyFormat.MARKDOWN)

    assert str(refused.value) == f"The template uses `config`, which is not available. {AVAILABLE}"


def test_a_syntax_error_is_refused_with_its_line_number(db):
    with pytest.raises(TemplateRefused) as refused:
        make_campaign(
            "Protest on the 5th",
            "Hello\n\nDear {{ subscriber.name }\n\nBye",
            body_format=BodyFormat.MARKDOWN,
            from_email="news@example.org",
        )

    assert str(refused.value).startswith("The template has a mistake on line 3:")


@pytest.mark.parametrize(
    "body",
    [
        '{{ "x" * 100000000 }}',
        "{{ 9 ** 99999 }}",
        '{{ "%0999999999d" % 1 }}',
        '{{ "x".ljust(1000000000) }}',
        "{{ subscriber.name.center(1000000000) }}",
        '{{ "x" | center(1000000000) }}',
        "{{ 1 / 0 }}",
    ],
)
def test_templates_that_fail_or_blow_up_when_filled_in_are_refused(db, body):
    with pytest.raises(TemplateRefused):
        make_campaign("Protest on the 5th", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")


@pytest.mark.parametrize(
    ("body", "body_format"),
    [
        ("[you](https://example.org/?who={{ subscriber.name }})", BodyFormat.MARKDOWN),
        ("[you]({{ subscriber.name }})", BodyFormat.MARKDOWN),
        ("![x](https://example.org/{{ subscriber.name }}.png)", BodyFormat.MARKDOWN),
        ('<a href="{{ subscriber.name }}">x</a>', BodyFormat.HTML),
        ('<img src="https://tracker.example/p.png?u={{ subscriber.name | urlencode }}">', BodyFormat.HTML),
    ],
)
def test_personal_text_in_a_link_or_image_address_is_refused(db, body, body_format):
    with pytest.raises(TemplateRefused, match="link or image address"):
        make_campaign("Protest on the 5th", body, body_format=body_format, from_email="news@example.org")


def test_the_personal_links_may_be_used_as_link_targets(db):
    body = "[Leave]({{ unsubscribe_url }}) · <{{ preferences_url }}> · [Online]({{ web_version_url }})"
    campaign = make_campaign("Protest on the 5th", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")

    page = render.render_preview(campaign).html

    assert re.search(r'<a href="https://lists.uscuk.test/unsubscribe/preview"[^>]*>Leave</a>', page)
    assert re.search(r'<a href="https://lists.uscuk.test/preferences/preview"[^>]*>https://lists', page)
    assert f'<a href="https://lists.uscuk.test/archive/{campaign.public_id}" rel' in page


def test_personal_links_in_markdown_text_are_not_mangled(db):
    # Tokens contain "_" and "-", which Markdown would otherwise read as emphasis.
    campaign = make_campaign(
        "Protest on the 5th",
        "Leave: {{ unsubscribe_url }}",
        body_format=BodyFormat.MARKDOWN,
        from_email="news@example.org",
    )
    url = "https://lists.uscuk.test/unsubscribe/x._b_.c__d__"
    values = MailValues("Alex", url, "https://lists.uscuk.test/preferences/p", "https://lists.uscuk.test/archive/w")

    mail = render.render_mail(campaign, values)

    assert f"Leave: {url}" in mail.html and f"Leave: {url}" in mail.text


# Web version and unsaved drafts


def test_the_web_version_carries_no_personal_data(db):
    body = "Dear {{ subscriber.name }}, [leave]({{ unsubscribe_url }}) or [choose]({{ preferences_url }})."
    campaign = make_campaign("Protest on the 5th", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")

    mail = render.render_web_version(campaign)

    for part in (mail.html, mail.text):
        assert "Dear supporter" in part
        assert "/unsubscribe/" not in part and "/preferences/" not in part
        assert "Every mail we send carries a personal unsubscribe link." in part
        assert "https://lists.uscuk.test/subscribe" in part
        assert "View in your browser" not in part
    assert '<a href="https://lists.uscuk.test/subscribe"' in mail.html


def test_an_unsaved_campaign_can_be_previewed(db):
    mailing_list = newsletter()
    campaign = Campaign(
        subject="Draft",
        body="Hello {{ subscriber.name }}",
        body_format=BodyFormat.MARKDOWN,
        from_name="USC-UK",
        from_email="news@uscuk.test",
    )
    campaign.lists = [mailing_list]

    preview = render.render_preview(campaign, name="Sam")
    web_version = render.render_web_version(campaign)

    assert "Hello Sam" in preview.html and "Hello Sam" in preview.text
    assert "Hello supporter" in web_version.html
    assert campaign not in db.session
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0
