"""One broken event can't stop the others' reminders, and what organisers type for a date or a notice is plain text:
the reminder beat isolates each event, records the reason on the event and the reminder, and never retries it."""

import html
from datetime import date

import sqlalchemy as sa
import time_machine

from tests.factories import add_confirmed, make_event, reminders_list, utc
from tests.pages import text
from uscmail.campaigns import tasks as campaign_tasks
from uscmail.reminders import services, tasks
from uscmail.reminders.models import Event, OccurrenceOverride, Reminder, ReminderStatus

# The 3-day reminders of the protests on the 5th fall due on the 2nd at 10:00 London time. Each test uses its own
# month and an odd second: the worker keeps a prepared campaign by id and start time, and both repeat from test to
# test under a frozen clock (other files freeze it at whole minutes).
DUE = utc(2027, 3, 2, 10, 4, 17)
DUE_IN_APRIL = utc(2027, 4, 2, 9, 4, 17)
DUE_IN_MAY = utc(2027, 5, 2, 9, 4, 17)


def reminder_rows(db, event_id: int) -> list[Reminder]:
    rows = db.session.scalars(sa.select(Reminder).where(Reminder.event_id == event_id)).all()
    db.session.rollback()
    return rows


def event_page(sign_in_as, event_id: int) -> str:
    return html.unescape(text(sign_in_as("viewer").get(f"/organisers/events/{event_id}")))


def test_an_event_whose_body_fails_at_send_time_does_not_stop_another_due_the_same_minute(
    db, worker, smtp_sink, sign_in_as
):
    # Stored directly, as an older version of the checks let it through: fails only when a reminder is made.
    broken = make_event()
    db.session.execute(
        sa.update(Event).where(Event.id == broken.id).values(body_template="Dear {{ subscriber.name }}, {{ 1 / 0 }}")
    )
    other = make_event(place="Parliament Square")
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    with time_machine.travel(DUE, tick=False):
        assert tasks.send_due_reminders() == 1
        assert tasks.send_due_reminders() == 0, "the broken reminder is not tried again every run"
    (mail,) = smtp_sink.wait_for(address)
    assert "Parliament Square" in mail.text()
    (skipped,) = reminder_rows(db, broken.id)
    assert skipped.status is ReminderStatus.SKIPPED and skipped.campaign_id is None
    assert skipped.detail == (
        "Not sent: The reminder template can't be used (the body): The template could not be filled in: "
        "division by zero."
    )
    assert [row.status for row in reminder_rows(db, other.id)] == [ReminderStatus.SENT]
    stored = db.session.get(Event, broken.id)
    assert "division by zero" in stored.last_error and stored.last_error_at is not None
    page = event_page(sign_in_as, broken.id)
    assert "Last problem" in page and "division by zero" in page
    assert "Not sent: The reminder template can't be used" in page


def test_any_fault_in_one_event_is_recorded_on_it_and_the_others_go_on(db, worker, smtp_sink):
    broken = make_event()
    make_event(place="Parliament Square")
    # A stored value no form accepts (a fault the checks can't produce): planning this event raises KeyError.
    db.session.execute(sa.update(Event).where(Event.id == broken.id).values(reminder_offsets=[{"at": "10:00"}]))
    db.session.commit()
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    with time_machine.travel(DUE_IN_APRIL, tick=False):
        assert tasks.send_due_reminders() == 1
    (mail,) = smtp_sink.wait_for(address)
    assert "Parliament Square" in mail.text()
    stored = db.session.get(Event, broken.id)
    assert stored.last_error == "An unexpected error (KeyError); the log has the details."


def test_notes_and_places_for_a_date_are_shown_as_written_never_run(db, worker, smtp_sink):
    event = make_event()
    db.session.add(
        OccurrenceOverride(
            event_id=event.id,
            occurrence_date=date(2027, 5, 5),
            place='Portland Place {% for x in "ab" %}{{ x }}{% endfor %}',
            note='Bring {{ banners }} and "flags" \\o/ *not bold*',
        )
    )
    db.session.commit()
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    with time_machine.travel(DUE_IN_MAY, tick=False):
        assert tasks.send_due_reminders() == 1
    (mail,) = smtp_sink.wait_for(address)
    body = mail.text()
    assert 'Bring {{ banners }} and "flags" \\o/ *not bold*' in body
    assert 'Portland Place {% for x in "ab" %}{{ x }}{% endfor %}' in body
    assert [row.status for row in reminder_rows(db, event.id)] == [ReminderStatus.SENT]


def test_a_hold_notice_shows_its_reason_as_written(db, worker, smtp_sink):
    event = make_event()
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    campaign_id = services.hold(event, "Back in {{ two }} weeks {% if x %}", "test", notice=True)
    db.session.commit()
    campaign_tasks.start_campaign.delay(campaign_id)
    (mail,) = smtp_sink.wait_for(address)
    assert "Back in {{ two }} weeks {% if x %}" in mail.text()
