"""The next protest as supporters are told it (issue #13): on the home page, the confirmed page and in the welcome
mail; in London time, written for people; cancelled dates skipped, overrides applied, and honest when every
protest is on hold or there are none."""

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_date

from tests.conftest import form_fields
from tests.factories import make_event, make_subscriber, newsletter
from tests.signup_support import LINK, put_in_state, subscriber_row
from uscmail.extensions import db as database
from uscmail.models import utcnow
from uscmail.reminders import services as events
from uscmail.reminders.models import Event
from uscmail.reminders.outlook import date_and_time_in_words, protest_outlook, time_in_words
from uscmail.subscriptions import mails


def test_times_and_dates_are_written_for_people_in_london_time():
    assert [time_in_words(datetime(2026, 12, 5, h, m)) for h, m in [(14, 0), (10, 30), (12, 0), (0, 0), (12, 15)]] == [
        "2 pm",
        "10:30 am",
        "12 noon",
        "midnight",
        "12:15 pm",
    ]
    assert date_and_time_in_words(datetime(2026, 12, 5, 14, 0, tzinfo=UTC)) == "Saturday 5 December 2026, 2 pm"
    # British Summer Time: 13:00 UTC is 2 pm in London.
    assert date_and_time_in_words(datetime(2027, 6, 5, 13, 0, tzinfo=UTC)) == "Saturday 5 June 2027, 2 pm"


def next_fifths(count: int) -> list[date]:
    """The next `count` 5ths of a month from tomorrow on."""
    found, day = [], utcnow().date() + timedelta(days=1)
    while len(found) < count:
        if day.day == 5:
            found.append(day)
        day += timedelta(days=1)
    return found


def test_the_next_date_skips_a_cancelled_one_and_takes_an_override(db):
    event = make_event(first_date=utcnow().date(), start_time=time(14, 0), place="Portland Place")
    first, second = next_fifths(2)
    events.set_override(event, first, "test", cancelled=True)
    events.set_override(event, second, "test", start_time=time(11, 30), place="Downing Street", note="Bring banners")
    database.session.commit()

    outlook = protest_outlook()

    assert outlook.next is not None and not outlook.on_hold
    assert outlook.next.when == f"{second:%A} {second.day} {second:%B %Y}, 11:30 am"
    assert (outlook.next.place, outlook.next.note) == ("Downing Street", "Bring banners")


def test_when_every_protest_is_on_hold_that_is_said_and_with_none_nothing_is(db, client):
    held = database.session.scalars(sa.select(Event)).all()
    assert held and all(event.on_hold for event in held)  # the seeded protest waits for its time
    assert protest_outlook().next is None and protest_outlook().on_hold
    home = client.get("/").get_data(as_text=True)
    assert "Our protests are paused for now." in home and "Our next protest" not in home
    subscriber = make_subscriber("welcome@example.org", lists=[newsletter()])
    welcome = mails.welcome_message(subscriber, [newsletter().id])
    text = welcome.get_body(("plain",)).get_content()
    assert "Our protests are paused for now" in text and "Our next protest" not in text

    for event in held:
        database.session.delete(event)
    database.session.commit()
    assert protest_outlook().next is None and not protest_outlook().on_hold
    home = client.get("/").get_data(as_text=True)
    assert 'id="next-protest"' not in home
    assert '<a href="/events">Upcoming protests</a>' in home  # the links stay
    text = mails.welcome_message(subscriber, [newsletter().id]).get_body(("plain",)).get_content()
    assert "protest" not in text.split("You will now receive:")[1].split("Change your preferences")[0].lower()


def test_the_confirmed_page_names_the_next_protest(db, client, worker, smtp_sink):
    """The confirmed page names the date, and so does the welcome mail the worker sends (waited for here, so its task
    cannot outlive this test and mail whoever has this subscriber's id in the next one)."""
    make_event(first_date=utcnow().date(), start_time=time(14, 0), place="Portland Place")
    put_in_state(db, "confirming@example.org", "pending")
    subscriber = subscriber_row(db, "confirming@example.org")
    mail = mails.confirmation_message(subscriber, [newsletter()]).get_body(("plain",)).get_content()
    path = LINK.search(mail).group(1)
    page = client.get(path)

    confirmed = client.post(path, data=form_fields(page.get_data(as_text=True)))

    html = confirmed.get_data(as_text=True)
    assert confirmed.status_code == 200 and "<h1>You're subscribed</h1>" in html
    assert f'<strong>{next_fifth_at_two()}</strong>, <span dir="auto">Portland Place</span>' in html
    [welcome] = smtp_sink.wait_for("confirming@example.org")
    assert f"Our next protest: {next_fifth_at_two()}, Portland Place." in welcome.text()


def next_fifth_at_two_date() -> date:
    """The next 5th of a month whose 2 pm (London) is still ahead."""
    london = ZoneInfo("Europe/London")
    now = datetime.now(london)
    day = now.date()
    while not (day.day == 5 and datetime.combine(day, time(14, 0), london) > now):
        day += timedelta(days=1)
    return day


def next_fifth_at_two() -> str:
    """The next 5th of a month whose 2 pm (London) is still ahead, written as a person would."""
    day = next_fifth_at_two_date()
    return f"{day:%A} {day.day} {day:%B %Y}, 2 pm"


def test_the_next_protest_is_written_in_the_readers_language(db, client):
    """Uyghur and Chinese readers get the date as their language writes it (CLDR), on the home page and in the
    welcome mail, around the same place; English keeps its own words."""
    make_event(first_date=utcnow().date(), start_time=time(14, 0), place="Portland Place")
    day = next_fifth_at_two_date()
    uyghur = f"{format_date(day, 'full', locale='ug')} 14:00"
    chinese = f"{format_date(day, 'full', locale='zh_Hans_CN')} 14:00"
    assert re.fullmatch(r"\d{4} \d{1,2}-[\u0600-\u06ff]+، [\u0600-\u06ff]+ 14:00", uyghur), uyghur
    assert chinese == f"{day.year}年{day.month}月{day.day}日星期{'一二三四五六日'[day.weekday()]} 14:00"

    home = client.get("/?lang=zh").get_data(as_text=True)
    assert f'<strong>{chinese}</strong>，<span dir="auto">Portland Place</span>' in home
    assert "我们的下一次抗议活动" in home and "pm" not in home.split('id="next-protest"')[1].split("</p>")[0]
    home = client.get("/?lang=ug").get_data(as_text=True)
    assert f'<strong>{uyghur}</strong>، <span dir="auto">Portland Place</span>' in home
    assert f"<strong>{next_fifth_at_two()}</strong>" in client.get("/?lang=en").get_data(as_text=True)

    subscriber = make_subscriber("welcome.ug@example.org", lists=[newsletter()])
    subscriber.locale = "ug"
    database.session.commit()
    text = mails.welcome_message(subscriber, [newsletter().id]).get_body(("plain",)).get_content()
    assert f"كېيىنكى نامايىشىمىز: {uyghur}، Portland Place." in text
    assert "Saturday" not in text and "December" not in text and " pm" not in text
