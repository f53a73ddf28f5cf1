"""Organiser operations on events: checked fields, hold and resume, overrides, the rule in words, the preview."""

from datetime import UTC, date, datetime, time

import pytest
import sqlalchemy as sa
import time_machine

from tests.factories import add_confirmed
from uscmail.models import MailingList
from uscmail.reminders import services, tasks
from uscmail.reminders.models import Event, Reminder
from uscmail.validation import InvalidInput


def reminders_list(db) -> MailingList:
    return db.session.scalar(sa.select(MailingList).where(MailingList.slug == "london-protest-reminders"))


def fields(db, **changes) -> services.EventFields:
    values = {
        "title": "Vigil for the disappeared",
        "place": "Parliament Square, London",
        "list_id": reminders_list(db).id,
        "rrule": "FREQ=MONTHLY;BYDAY=1SA",
        "first_date": date(2027, 1, 1),
        "start_time": time(14, 0),
    }
    return services.EventFields(**{**values, **changes})


def test_a_new_event_waits_on_hold_until_an_organiser_resumes_it(db):
    event = services.create_event(fields(db), "test")
    db.session.commit()
    assert event.on_hold and event.hold_reason.startswith("New")
    assert event.reminder_offsets == [{"days_before": 3, "at": "10:00"}, {"days_before": 0, "at": "08:00"}]
    assert services.describe_rule(event) == "on the first Saturday of every month"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": " "}, "give the title"),
        ({"place": "Embassy\r\nBcc: x@y"}, "line breaks"),
        ({"rrule": "FREQ=SOMETIMES"}, "repeats DAILY, WEEKLY, MONTHLY or YEARLY"),
        ({"rrule": "FREQ=MINUTELY"}, "repeats DAILY"),
        ({"rrule": "FREQ=MONTHLY;INTERVAL=0"}, "INTERVAL must be"),
        ({"rrule": "FREQ=DAILY;BYSETPOS=2"}, "BYSETPOS"),
        ({"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}, "no dates at all"),
        ({"rrule": "FREQ=YEARLY;BYEASTER=400"}, "can't use BYEASTER"),
        ({"rrule": "FREQ=MONTHLY;BYDAY=9MO"}, "can't be used"),
        ({"first_date": date(1, 1, 1)}, "within ten years"),
        ({"body_template": "Hello\x00"}, "can't be stored"),
        ({"subject_template": "{{ place }}" * 20}, "over 255 characters"),
        ({"timezone": "Europe"}, "not a time zone"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "no dates in the next year"),
        ({"timezone": "Mars/Olympus"}, "not a time zone"),
        ({"duration_minutes": 0}, "duration"),
        ({"map_url": "javascript:alert(1)"}, "https://"),
        ({"reminder_offsets": [{"days_before": 3, "at": "10:00"}, {"days_before": 3, "at": "10:00"}]}, "twice"),
        ({"subject_template": "{{ config }}"}, "can't be used"),
        ({"body_template": "Hello {{ ''.__class__ }}"}, "can't be used"),
        ({"list_id": 999_999}, "active list"),
    ],
)
def test_bad_event_fields_get_a_clear_message_and_store_nothing(db, changes, message):
    with pytest.raises(InvalidInput, match=message):
        services.create_event(fields(db, **changes), "test")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1  # only the seeded protest


def test_resume_needs_a_time_and_does_not_send_what_fell_due_during_the_hold(db, worker, smtp_sink):
    (seeded,) = db.session.scalars(sa.select(Event)).all()
    with pytest.raises(InvalidInput, match="Set the start time"):
        services.resume(seeded, "test")
    (address,) = add_confirmed(1, mailing_list=reminders_list(db))
    event = services.create_event(fields(db, rrule="FREQ=MONTHLY;BYMONTHDAY=5", start_time=time(18, 0)), "test")
    db.session.commit()
    # On hold over the 3-day reminder (2 March 2027, 10:00 GMT): nothing is sent.
    with time_machine.travel(datetime(2027, 3, 2, 10, 5, tzinfo=UTC), tick=False):
        assert tasks.send_due_reminders() == 0
    # Resumed on 3 March: the missed 3-day reminder stays unsent; the morning one (5 March, 08:00) goes out.
    with time_machine.travel(datetime(2027, 3, 3, 12, 0, tzinfo=UTC), tick=False):
        services.resume(event, "test")
        db.session.commit()
        assert tasks.send_due_reminders() == 0
    with time_machine.travel(datetime(2027, 3, 5, 8, 0, 30, tzinfo=UTC), tick=False):
        assert tasks.send_due_reminders() == 1
    assert db.session.scalars(sa.select(Reminder.offset_key)).all() == ["0d@08:00"]
    # Let the worker finish that reminder before the next test empties the tables under it.
    smtp_sink.wait_for(address)
    with pytest.raises(InvalidInput, match="not on hold"):
        services.resume(event, "test")
    services.hold(event, "Police have closed the road", "test")
    db.session.commit()
    with pytest.raises(InvalidInput, match="already on hold"):
        services.hold(event, "again", "test")


def test_overrides_apply_to_their_date_only_and_clear_when_emptied(db):
    event = services.create_event(fields(db), "test")
    with pytest.raises(InvalidInput, match="not a date of this event"):
        services.set_override(event, date(2027, 2, 7), "test", cancelled=True)
    services.set_override(event, date(2027, 2, 6), "test", place="Oxford Circus", note="Meet by the tube exit")
    db.session.commit()
    moved, following = _two(event)
    assert moved.place == "Oxford Circus" and moved.note == "Meet by the tube exit"
    assert following.place == "Parliament Square, London" and following.note is None
    assert services.set_override(event, date(2027, 2, 6), "test") is None
    db.session.commit()
    assert _two(event)[0].place == "Parliament Square, London"


def _two(event: Event):
    from uscmail.reminders.planning import overrides_of
    from uscmail.reminders.schedule import occurrences

    return occurrences(event, overrides_of(event), date(2027, 2, 1), date(2027, 3, 31))[:2]


def test_the_preview_shows_the_next_reminder_as_it_will_be_sent(db):
    event = services.create_event(fields(db), "test")
    db.session.commit()
    with time_machine.travel(datetime(2027, 1, 10, tzinfo=UTC), tick=False):
        services.set_override(event, date(2027, 2, 6), "test", note="Bring banners")
        db.session.commit()
        mail = services.preview_next_reminder(event)
    assert mail.subject == "Protest Saturday 6 February 2027: Vigil for the disappeared"
    assert "Saturday 6 February 2027 at 14:00" in mail.text and "Bring banners" in mail.text
    assert db.session.scalar(sa.text("SELECT count(*) FROM campaigns")) == 0, "the preview keeps no campaign"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=MONTHLY;BYMONTHDAY=5", "on the 5th of every month"),
        ("FREQ=MONTHLY;BYMONTHDAY=31", "on the 31st of every month (months without a 31st are skipped)"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", "on the last day of every month"),
        ("FREQ=MONTHLY;BYDAY=-1FR", "on the last Friday of every month"),
        ("FREQ=WEEKLY;BYDAY=TH", "every Thursday"),
        ("FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU", "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU"),
        ("FREQ=MONTHLY;BYMONTHDAY=5,20", "FREQ=MONTHLY;BYMONTHDAY=5,20"),
        ("FREQ=MONTHLY;BYMONTHDAY=-2", "FREQ=MONTHLY;BYMONTHDAY=-2"),
    ],
)
def test_the_rule_in_words(db, rule, words):
    assert services.describe_rule(Event(rrule=rule)) == words
