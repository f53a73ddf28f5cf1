"""Protest reminders: the right instants across daylight-saving changes and month ends, exactly once, with an
invitation a calendar reads back. The clock is moved with time-machine; a real worker sends the mail."""

import threading
from datetime import UTC, date, datetime, time, timedelta

import icalendar
import pytest
import sqlalchemy as sa
import time_machine

from tests.campaign_support import counts, wait_for_status
from tests.factories import add_confirmed, make_event, reminders_list, utc
from uscmail.campaigns.models import Campaign, CampaignKind, CampaignStatus, DeliveryStatus
from uscmail.reminders import schedule, tasks
from uscmail.reminders.models import Event, OccurrenceOverride, Reminder, ReminderStatus

LONDON = schedule.ZoneInfo("Europe/London")


def due_times(event: Event, day: date) -> dict[str, datetime]:
    (occurrence,) = schedule.occurrences(event, {}, day, day)
    return {due.offset_key: due.due_at for due in schedule.reminder_times(event, occurrence)}


def test_reminder_times_keep_their_wall_clock_time_across_daylight_saving_changes(db):
    event = make_event()
    # March: Greenwich Mean Time, so 10:00 in London is 10:00 UTC.
    assert due_times(event, date(2027, 3, 5)) == {"3d@10:00": utc(2027, 3, 2, 10), "0d@08:00": utc(2027, 3, 5, 8)}
    # April: British Summer Time, so 10:00 in London is 09:00 UTC.
    assert due_times(event, date(2027, 4, 5)) == {"3d@10:00": utc(2027, 4, 2, 9), "0d@08:00": utc(2027, 4, 5, 7)}
    # A protest on 30 March, two days after the clocks go forward (28 March 2027): its 3-day reminder is still in GMT.
    late_march = make_event(rrule="FREQ=MONTHLY;BYMONTHDAY=30")
    assert due_times(late_march, date(2027, 3, 30)) == {
        "3d@10:00": utc(2027, 3, 27, 10),
        "0d@08:00": utc(2027, 3, 30, 7),
    }
    (occurrence,) = schedule.occurrences(late_march, {}, date(2027, 3, 30), date(2027, 3, 30))
    assert occurrence.starts_at.astimezone(UTC) == utc(2027, 3, 30, 17)
    # ...and one the day after the clocks go back (31 October 2027).
    autumn = make_event(rrule="FREQ=MONTHLY;BYMONTHDAY=1")
    assert due_times(autumn, date(2027, 11, 1)) == {"3d@10:00": utc(2027, 10, 29, 9), "0d@08:00": utc(2027, 11, 1, 8)}


def test_a_time_the_clocks_skip_moves_forward_and_a_repeated_one_means_the_first(db):
    assert schedule.local_datetime(date(2027, 3, 28), time(1, 30), LONDON).astimezone(UTC) == utc(2027, 3, 28, 1, 30)
    assert schedule.local_datetime(date(2027, 10, 31), time(1, 30), LONDON).astimezone(UTC) == utc(2027, 10, 31, 0, 30)


def test_month_ends_follow_the_rule_as_written(db):
    # RFC 5545: a month without a 31st has no occurrence; "the last day" is BYMONTHDAY=-1.
    on_31st = make_event(rrule="FREQ=MONTHLY;BYMONTHDAY=31")
    assert schedule.occurrence_dates(on_31st, date(2027, 1, 1), date(2027, 6, 30)) == [
        date(2027, 1, 31),
        date(2027, 3, 31),
        date(2027, 5, 31),
    ]
    last_day = make_event(rrule="FREQ=MONTHLY;BYMONTHDAY=-1")
    assert schedule.occurrence_dates(last_day, date(2027, 1, 1), date(2027, 4, 30)) == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
    ]
    first_saturday = make_event(rrule="FREQ=MONTHLY;BYDAY=1SA")
    assert schedule.occurrence_dates(first_saturday, date(2027, 1, 1), date(2027, 2, 28)) == [
        date(2027, 1, 2),
        date(2027, 2, 6),
    ]


def test_bad_rules_and_offsets_get_a_clear_error():
    with pytest.raises(schedule.RuleInvalid, match="repeats DAILY"):
        schedule.parse_rule("FREQ=SOMETIMES", date(2027, 1, 1))
    with pytest.raises(schedule.RuleInvalid, match="without DTSTART"):
        schedule.parse_rule("DTSTART:20270101T000000\nRRULE:FREQ=DAILY", date(2027, 1, 1))
    with pytest.raises(schedule.RuleInvalid, match="between 0 and 60"):
        schedule.parse_offsets([{"days_before": 90, "at": "10:00"}])
    with pytest.raises(schedule.RuleInvalid, match="HH:MM"):
        schedule.parse_offsets([{"days_before": 1, "at": "ten"}])


def test_each_reminder_fires_once_at_its_instant_across_a_dst_change_with_an_invitation(db, worker, smtp_sink):
    make_event(rrule="FREQ=MONTHLY;BYMONTHDAY=30")
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    # One second before the 3-day reminder (27 March 2027, 10:00 GMT): nothing.
    with time_machine.travel(utc(2027, 3, 27, 9, 59, 59), tick=False):
        assert tasks.send_due_reminders() == 0
    with time_machine.travel(utc(2027, 3, 27, 10, 0, 30), tick=False):
        assert tasks.send_due_reminders() == 1
        assert tasks.send_due_reminders() == 0, "a second beat run sends nothing more"
    (mail,) = smtp_sink.wait_for(address)
    assert mail.message["Subject"] == "Protest Tuesday 30 March 2027: Monthly protest at the Chinese Embassy"
    assert "Tuesday 30 March 2027 at 18:00" in mail.text() and "Portland Place" in mail.text()
    # The invitation reads back with the right start in UTC (18:00 BST is 17:00 UTC).
    (invite,) = [part for part in mail.message.iter_attachments() if part.get_content_type() == "text/calendar"]
    calendar = icalendar.Calendar.from_ical(invite.get_content())
    (vevent,) = calendar.walk("VEVENT")
    assert vevent.decoded("dtstart").astimezone(UTC) == utc(2027, 3, 30, 17)
    assert vevent.decoded("dtend").astimezone(UTC) == utc(2027, 3, 30, 19)
    assert str(vevent["location"]).startswith("Chinese Embassy")
    assert calendar.walk("VTIMEZONE"), "the time zone travels with the invitation"
    # The morning reminder: 08:00 BST on the day is 07:00 UTC, after the clocks changed.
    with time_machine.travel(utc(2027, 3, 30, 6, 59), tick=False):
        assert tasks.send_due_reminders() == 0
    with time_machine.travel(utc(2027, 3, 30, 7, 0, 5), tick=False):
        assert tasks.send_due_reminders() == 1
    smtp_sink.wait_for(address, count=2)
    campaigns = db.session.scalars(sa.select(Campaign).order_by(Campaign.id)).all()
    assert [c.kind for c in campaigns] == [CampaignKind.REMINDER, CampaignKind.REMINDER]
    for campaign in campaigns:
        wait_for_status(campaign.id, CampaignStatus.SENT)
        assert counts(campaign.id) == {DeliveryStatus.SENT: 1}
    statuses = db.session.scalars(sa.select(Reminder.status).order_by(Reminder.id)).all()
    assert statuses == [ReminderStatus.SENT, ReminderStatus.SENT]


def test_duplicate_beat_runs_at_once_send_each_reminder_once(db, worker, smtp_sink, app):
    make_event()
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    results = []

    def beat():
        with app.app_context():
            results.append(tasks.send_due_reminders())

    with time_machine.travel(utc(2027, 3, 2, 10, 1), tick=False):
        runs = [threading.Thread(target=beat) for _ in range(3)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
    assert sorted(results) == [0, 0, 1]
    smtp_sink.wait_for(address)
    smtp_sink.settle(2)
    assert len(smtp_sink.to(address)) == 1


def test_after_downtime_a_reminder_goes_late_if_the_protest_is_ahead_and_is_skipped_if_not(db, worker, smtp_sink):
    make_event()
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    # Down from 1 March until 5 March 07:30 UTC: the 3-day reminder (2 March) was missed; the protest is still ahead.
    with time_machine.travel(utc(2027, 3, 5, 7, 30), tick=False):
        assert tasks.send_due_reminders() == 1
    smtp_sink.wait_for(address)
    # Down again from before 08:00 until after the protest began at 18:00: the morning reminder is skipped, and logged.
    with time_machine.travel(utc(2027, 3, 5, 18, 30), tick=False):
        assert tasks.send_due_reminders() == 0
    rows = {row.offset_key: row.status for row in db.session.scalars(sa.select(Reminder))}
    assert rows == {"3d@10:00": ReminderStatus.LATE, "0d@08:00": ReminderStatus.SKIPPED}
    smtp_sink.settle(1)
    assert len(smtp_sink.to(address)) == 1


def test_an_event_on_hold_or_without_a_time_sends_nothing(db, smtp_sink):
    make_event(on_hold=True, hold_reason="Paused during the lockdown")
    make_event(start_time=None)
    add_confirmed(1, mailing_list=reminders_list())
    with time_machine.travel(utc(2027, 3, 2, 10, 1), tick=False):
        assert tasks.send_due_reminders() == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Reminder)) == 0


def test_a_cancelled_occurrence_sends_nothing_and_a_moved_one_says_where_and_when(db, worker, smtp_sink):
    event = make_event()
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    db.session.add(OccurrenceOverride(event_id=event.id, occurrence_date=date(2027, 3, 5), cancelled=True))
    db.session.add(
        OccurrenceOverride(
            event_id=event.id,
            occurrence_date=date(2027, 4, 5),
            start_time=time(19, 30),
            place="Oxford Circus",
            note="Meet at Oxford Circus instead: the embassy road is closed",
        )
    )
    db.session.commit()
    with time_machine.travel(utc(2027, 3, 2, 10, 1), tick=False):
        assert tasks.send_due_reminders() == 0
    assert db.session.scalar(sa.select(Reminder.status)) is ReminderStatus.CANCELLED
    with time_machine.travel(utc(2027, 4, 2, 9, 1), tick=False):
        assert tasks.send_due_reminders() == 1
    (mail,) = smtp_sink.wait_for(address)
    text = mail.text()
    assert "Oxford Circus" in text and "19:30" in text and "the embassy road is closed" in text
    (invite,) = [part for part in mail.message.iter_attachments() if part.get_content_type() == "text/calendar"]
    (vevent,) = icalendar.Calendar.from_ical(invite.get_content()).walk("VEVENT")
    assert vevent.decoded("dtstart").astimezone(UTC) == utc(2027, 4, 5, 18, 30)
    assert str(vevent["location"]) == "Oxford Circus"


def test_the_seeded_protest_is_on_hold_with_no_time_until_an_organiser_reviews_it(db):
    (event,) = db.session.scalars(sa.select(Event)).all()
    assert event.title == "Monthly protest at the Chinese Embassy"
    assert event.rrule == "FREQ=MONTHLY;BYMONTHDAY=5" and "49–51 Portland Place" in event.place
    assert event.on_hold and event.start_time is None
    assert event.mailing_list.slug == "london-protest-reminders"
    assert schedule.occurrences(event, {}, date(2027, 1, 1), date(2027, 12, 31)) == []


def test_two_real_beat_processes_send_a_due_reminder_once(db, spawn_worker, spawn_beat, smtp_sink):
    queue = f"reminders-beat-{datetime.now().timestamp():.0f}"
    now = datetime.now(LONDON)
    # A daily protest two hours from now, with a reminder that fell due a minute ago: beat finds it on its first run.
    start = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    reminded = now - timedelta(minutes=1)
    make_event(
        rrule="FREQ=DAILY",
        start_time=start.time(),
        first_date=now.date() - timedelta(days=7),
        active_since=datetime.now(UTC) - timedelta(minutes=10),
        reminder_offsets=[{"days_before": (start.date() - reminded.date()).days, "at": reminded.strftime("%H:%M")}],
    )
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    spawn_worker("reminder-worker", queue=queue)
    for name in ("first-beat", "second-beat"):
        spawn_beat(name, queue, REMINDER_CHECK_SECONDS=1)
    smtp_sink.wait_for(address, timeout=60)
    smtp_sink.settle(4)  # several more beat runs from both processes
    assert len(smtp_sink.to(address)) == 1, "two beat processes, one reminder"
    today = sa.select(Reminder.status).where(Reminder.occurrence_date == start.date())
    assert db.session.scalars(today).all() == [ReminderStatus.SENT]
    # The week's earlier protests happened before the event existed: nothing is sent or reported for them.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Reminder)) == 1


def test_the_public_page_and_feed_list_upcoming_protests_with_their_changes(db, client):
    event = make_event()
    make_event(on_hold=True, hold_reason="Paused", place="Somewhere else entirely")
    db.session.add_all(
        [
            OccurrenceOverride(event_id=event.id, occurrence_date=date(2027, 4, 5), cancelled=True),
            OccurrenceOverride(
                event_id=event.id, occurrence_date=date(2027, 5, 5), start_time=time(19, 30), note="Bring banners"
            ),
        ]
    )
    db.session.commit()
    with time_machine.travel(utc(2027, 3, 5, 19, 0), tick=False):  # during the March protest
        page = client.get("/events").get_data(as_text=True)
        feed = client.get("/events.ics")
    assert "Friday 5 March 2027, 18:00" in page, "a protest under way is still listed"
    assert "Monday 5 April 2027, 18:00</strong> — <strong>cancelled" in page
    assert "Wednesday 5 May 2027, 19:30" in page and "Bring banners" in page
    assert "Somewhere else entirely" not in page, "events on hold are not listed"
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    calendar = icalendar.Calendar.from_ical(feed.data)
    vevents = {vevent.decoded("dtstart").date(): vevent for vevent in calendar.walk("VEVENT")}
    assert vevents[date(2027, 3, 5)].decoded("dtstart").astimezone(UTC) == utc(2027, 3, 5, 18)
    assert vevents[date(2027, 5, 5)].decoded("dtstart").astimezone(UTC) == utc(2027, 5, 5, 18, 30)
    assert str(vevents[date(2027, 4, 5)]["status"]) == "CANCELLED"
    assert len({str(vevent["uid"]) for vevent in vevents.values()}) == len(vevents)
