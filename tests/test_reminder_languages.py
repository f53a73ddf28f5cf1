"""Protest reminders in the readers' languages: an event's templates in Uyghur or Chinese (starting from our
translations of the defaults) give each reminder campaign a translation, with dates written that language's way."""

import sqlalchemy as sa
import time_machine

from tests.campaign_support import wait_for_status
from tests.factories import make_event, make_subscriber, reminders_list, utc
from tests.pages import alert, flashed, fresh, post_from, text
from uscmail.campaigns.models import Campaign, CampaignStatus, CampaignTranslation
from uscmail.extensions import db as database
from uscmail.reminders import tasks, translations
from uscmail.reminders.models import EventTranslation
from uscmail.reminders.planning import DEFAULT_TEMPLATES

BASE = "/organisers/events"


def reader(locale: str, name: str | None = None) -> str:
    subscriber = make_subscriber(f"{locale}@example.org", name=name, lists=[reminders_list()])
    subscriber.locale = locale
    database.session.commit()
    return subscriber.email


def test_each_reader_gets_the_reminder_in_their_language_with_dates_written_their_way(db, worker, smtp_sink):
    event = make_event()
    for locale in ("ug", "zh"):
        translations.save_translation(event, locale, *DEFAULT_TEMPLATES[locale], "test")
    database.session.commit()
    english, uyghur, chinese = reader("en", "Ann"), reader("ug"), reader("zh", "李明")
    # The 3-day reminder of 5 January 2027: 2 January, 10:00 London time.
    with time_machine.travel(utc(2027, 1, 2, 10, 0, 30), tick=False):
        assert tasks.send_due_reminders() == 1
    (campaign_id,) = db.session.scalars(sa.select(Campaign.id)).all()
    wait_for_status(campaign_id, CampaignStatus.SENT)

    (mail,) = smtp_sink.to(english)
    assert mail.message["Subject"] == "Protest Tuesday 5 January 2027: Monthly protest at the Chinese Embassy"
    (mail,) = smtp_sink.to(uyghur)
    assert mail.message["Subject"] == "نامايىش 2027 5-يانۋار، سەيشەنبە: Monthly protest at the Chinese Embassy"
    assert '<html lang="ug" dir="rtl">' in mail.html()
    body = mail.text()
    assert "ھۆرمەتلىك قوللىغۇچى،" in body, "no name: the Uyghur word for supporter"
    assert "سائەت 18:00" in body and "Portland Place" in body
    assert [part.get_content_type() for part in mail.message.iter_attachments()] == ["text/calendar"]
    (mail,) = smtp_sink.to(chinese)
    assert mail.message["Subject"] == "抗议活动 2027年1月5日星期二：Monthly protest at the Chinese Embassy"
    assert "亲爱的 李明：" in mail.text() and '<html lang="zh-Hans" dir="ltr">' in mail.html()
    locales = fresh(db).scalars(sa.select(CampaignTranslation.locale).order_by(CampaignTranslation.locale)).all()
    assert locales == ["ug", "zh"]


def test_an_editor_adds_a_translation_starting_from_ours_and_bad_templates_are_refused(db, sign_in_as):
    event = make_event()
    editor = sign_in_as("editor")
    event_page = text(editor.get(f"{BASE}/{event.id}"))
    assert f"{BASE}/{event.id}/languages/ug" in event_page and "Add Chinese" in event_page
    page = f"{BASE}/{event.id}/languages/ug"
    form = text(editor.get(page))
    assert "ھۆرمەتلىك {{ subscriber.name }}" in form, "the form starts from our Uyghur template"
    subject, body = DEFAULT_TEMPLATES["ug"]
    for bad, words in (
        ({"subject": "{{ config }}", "body": body}, "config"),
        ({"subject": subject, "body": "{{ nonsense.x }}"}, "nonsense"),
        ({"subject": subject, "body": "   "}, "Please write the body template."),
        ({"subject": "", "body": body}, "subject template"),
    ):
        answer = post_from(editor, page, page, **bad)
        assert answer.status_code == 400, words
        assert words in alert(text(answer)), (words, alert(text(answer)))
    assert fresh(db).scalars(sa.select(EventTranslation)).all() == []

    answer = post_from(editor, page, page, subject=subject, body=body + "\nتوختى")
    assert answer.status_code == 302
    assert "Uyghur (ئۇيغۇرچە) reminder templates are saved" in flashed(text(editor.get(answer.headers["Location"])))
    preview = text(editor.get(f"{BASE}/{event.id}/preview?lang=ug"))
    assert 'dir="rtl"' in preview and "توختى" in preview
    remove = f"{page}/remove"
    assert post_from(editor, remove, remove).status_code == 302
    assert fresh(db).scalars(sa.select(EventTranslation)).all() == []
    assert editor.get(f"{BASE}/{event.id}/languages/en").status_code == 404
    assert editor.get(f"{BASE}/{event.id}/languages/fr").status_code == 404
    assert sign_in_as("viewer").get(page).status_code == 403
