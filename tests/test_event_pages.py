"""The organisers' event pages through the test client: roles, creating with each recurrence choice, refusals that
store nothing, hold and resume with notices that reach the list, per-date changes, the next dates with their
reminders, the reminder log, and the preview of the next reminder under its own policy."""

import re
from datetime import date, time, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields, isolated_client
from tests.factories import add_confirmed, create_event, make_campaign, make_list, reminders_list
from tests.pages import alert, flashed, form_data, fresh, post_from, text
from uscmail.extensions import db as database
from uscmail.models import utcnow
from uscmail.reminders import services
from uscmail.reminders.models import Event, OccurrenceOverride, Reminder, ReminderStatus
from uscmail.reminders.planning import DEFAULT_SUBJECT

BASE = "/organisers/events"
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'"
SEEDED_TITLE = "Monthly protest at the Chinese Embassy"
PARLIAMENT_MAP = "https://www.openstreetmap.org/?mlat=51.5007&mlon=-0.1268"


def seeded_event() -> Event:
    return database.session.scalar(sa.select(Event).where(Event.title == SEEDED_TITLE))


def event_rows(db) -> list[Event]:
    return fresh(db).scalars(sa.select(Event).order_by(Event.id)).all()


def upcoming_dates(event: Event, count: int = 3) -> list[date]:
    """The event's next dates from today, as the event page lists them."""
    return [occurrence.date for occurrence, _ in services.upcoming_with_reminders(event, count)]


def day_words(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


# Who may do what


def test_signed_out_visitors_are_sent_to_sign_in(app, db):
    event = create_event(map_url=PARLIAMENT_MAP)
    stranger = isolated_client(app)
    for path in ("", "/new", f"/{event.id}", f"/{event.id}/edit", f"/{event.id}/preview"):
        response = stranger.get(BASE + path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/organisers/login"), path
    token = form_fields(text(stranger.get("/organisers/login")))
    for path in ("/new", f"/{event.id}/hold", f"/{event.id}/resume", f"/{event.id}/dates/2027-02-05"):
        response = stranger.post(BASE + path, data={**token, **form_data(reason="Closed")})
        assert response.status_code == 302 and response.headers["Location"].startswith("/organisers/login"), path
    assert [row.on_hold for row in event_rows(db)] == [True, True]
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(OccurrenceOverride)) == 0


def test_viewers_read_events_but_cannot_change_them(db, sign_in_as):
    event = create_event(resumed=True, map_url=PARLIAMENT_MAP)
    viewer = sign_in_as("viewer")
    listing = text(viewer.get(BASE))
    assert "Vigil for the disappeared" in listing and ">New event</a>" not in listing
    assert '<a href="/organisers/events" aria-current="page">Events</a>' in listing
    page = text(viewer.get(f"{BASE}/{event.id}"))
    assert "<h1>Vigil for the disappeared</h1>" in page
    for control in ("Put on hold", "Resume</button>", "Edit the event", "Change this date", 'id="hold-form"'):
        assert control not in page, control
    assert 'id="occurrences"' in page and f'src="{BASE}/{event.id}/preview"' in page
    assert viewer.get(f"{BASE}/{event.id}/preview").status_code == 200
    assert viewer.get(f"{BASE}/new").status_code == 403
    assert viewer.get(f"{BASE}/{event.id}/edit").status_code == 403
    token = form_fields(page)  # the sign-out form's token is this session's token
    day = upcoming_dates(event)[0].isoformat()
    for path in ("/new", f"/{event.id}/edit", f"/{event.id}/hold", f"/{event.id}/resume", f"/{event.id}/dates/{day}"):
        response = viewer.post(BASE + path, data={**token, **form_data(title="Changed", reason="x", cancelled="y")})
        assert response.status_code == 403, path
    rows = event_rows(db)
    assert [(row.title, row.on_hold) for row in rows] == [(SEEDED_TITLE, True), ("Vigil for the disappeared", False)]
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(OccurrenceOverride)) == 0


# The list and the seeded event


def test_the_list_shows_each_event_with_its_rule_time_place_list_status_and_next_date(db, sign_in_as):
    event = create_event(
        title="Saturday vigil",
        resumed=True,
        rrule="FREQ=MONTHLY;BYDAY=1SA",
        start_time=time(14, 30),
        map_url=PARLIAMENT_MAP,
    )
    page = text(sign_in_as("editor").get(BASE))
    assert '<a class="button" href="/organisers/events/new">New event</a>' in page
    rows = page.split('id="events"', 1)[1].split("</table>", 1)[0]
    vigil = rows.split("Saturday vigil", 1)[1].split("</tr>", 1)[0]
    assert "on the first Saturday of every month" in vigil and "14:30" in vigil
    assert "Parliament Square, London" in vigil and "London protest reminders" in vigil
    assert '<span class="status status-active">active</span>' in vigil
    upcoming = services.next_occurrence(event).starts_at
    assert f"{upcoming.day} {upcoming:%b %Y}, 14:30 {upcoming.tzname()}" in vigil
    seeded = rows.split(SEEDED_TITLE, 1)[1].split("</tr>", 1)[0]
    assert "on the 5th of every month" in seeded and "Needs a start time" in seeded
    assert '<span class="status status-on-hold">on hold</span>' in seeded
    assert "New: set the time of the protest and review the reminders, then resume." in seeded


def test_the_seeded_event_shows_that_it_needs_a_time_and_cannot_be_resumed_without_one(db, sign_in_as):
    seeded = seeded_event()
    editor = sign_in_as("editor")
    page = text(editor.get(f"{BASE}/{seeded.id}"))
    assert '<div class="alert alert-notice" id="needs-time">' in page
    assert "<strong>This event needs a start time.</strong>" in page
    assert f'<a href="{BASE}/{seeded.id}/edit">Set the time</a>' in page
    assert "<dt>Time</dt><dd>Not set</dd>" in page
    assert "No dates until the event has a start time." in page
    assert "<iframe" not in page and "There is no next reminder to show: set the start time first." in page
    assert "It can be resumed once it has a start time." in page and 'id="resume-form"' not in page
    preview = editor.get(f"{BASE}/{seeded.id}/preview")
    assert preview.status_code == 404 and preview.headers["Content-Security-Policy"] == PREVIEW_CSP
    assert "Set the start time of the event" in text(preview)
    refused = post_from(editor, f"{BASE}/{seeded.id}", f"{BASE}/{seeded.id}/resume", notice="y")
    assert refused.status_code == 400
    assert "Set the start time of the protest before resuming it." in alert(text(refused))
    (row, *_) = event_rows(db)
    assert row.on_hold and row.start_time is None
    assert fresh(db).scalar(sa.text("SELECT count(*) FROM campaigns")) == 0


# Creating and editing


@pytest.mark.parametrize(
    ("choice", "rule", "words"),
    [
        ({"recurrence": "monthday", "month_day": "5"}, "FREQ=MONTHLY;BYMONTHDAY=5", "on the 5th of every month"),
        ({"recurrence": "monthday", "month_day": "-1"}, "FREQ=MONTHLY;BYMONTHDAY=-1", "on the last day of every month"),
        (
            {"recurrence": "monthday", "month_day": "31"},
            "FREQ=MONTHLY;BYMONTHDAY=31",
            "on the 31st of every month (months without a 31st are skipped)",
        ),
        (
            {"recurrence": "weekday", "ordinal": "1", "weekday": "SA"},
            "FREQ=MONTHLY;BYDAY=1SA",
            "on the first Saturday of every month",
        ),
        (
            {"recurrence": "weekday", "ordinal": "-1", "weekday": "FR"},
            "FREQ=MONTHLY;BYDAY=-1FR",
            "on the last Friday of every month",
        ),
        ({"recurrence": "weekly", "weekly_day": "TH"}, "FREQ=WEEKLY;BYDAY=TH", "every Thursday"),
        (
            {"recurrence": "rrule", "rrule": "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU"},
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU",
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU",
        ),
    ],
)
def test_an_editor_creates_an_event_with_each_recurrence_choice(db, sign_in_as, choice, rule, words):
    editor = sign_in_as("editor")
    response = post_from(editor, f"{BASE}/new", f"{BASE}/new", **form_data(**choice))
    event = event_rows(db)[-1]
    assert response.status_code == 302 and response.headers["Location"] == f"{BASE}/{event.id}"
    assert (event.title, event.rrule, event.first_date, event.start_time, event.duration_minutes) == (
        "Vigil for the disappeared", rule, date(2027, 1, 1), time(18, 0), 90,
    )  # fmt: skip
    assert event.reminder_offsets == [{"days_before": 3, "at": "10:00"}, {"days_before": 0, "at": "08:00"}]
    assert event.on_hold and event.timezone == "Europe/London" and event.list_id == reminders_list().id
    page = text(editor.get(response.headers["Location"]))
    assert "The event is saved. It is on hold" in flashed(page)
    assert f"<dt>Repeats</dt><dd>{words}, from Friday 1 January 2027</dd>" in page
    assert "18:00 London time, for 1 hour 30 minutes" in page
    assert "3 days before at 10:00; on the day at 08:00" in page


def test_the_form_offers_the_common_choices_the_defaults_and_the_template_variables(db, sign_in_as):
    make_list("old-list", "Old list", archived=True)
    database.session.commit()
    page = text(sign_in_as("editor").get(f"{BASE}/new"))
    assert 'id="recurrence-monthday" checked' in page
    for kind in ("weekday", "weekly", "rrule"):
        assert f'id="recurrence-{kind}">' in page
    assert '<option selected value="5">the 5th</option>' in page
    assert '<option value="-1">the last day of the month</option>' in page
    assert "A rule for the 31st skips the months that have no 31st" in page
    assert "choose “the last day of the month”" in page
    assert '<option value="-1">last</option>' in page and '<option value="TH">Thursday</option>' in page
    assert re.search(r'name="days_before" value="3"[^>]*>.*?name="at" value="10:00"', page, re.S)
    assert re.search(r'name="days_before" value="0"[^>]*>.*?name="at" value="08:00"', page, re.S)
    assert page.count('name="days_before"') == 4
    assert "Start time (London time)" in page and "At (London time)" in page
    for variable in ("date", "time", "place", "notes", "title", "map_url", "subscriber.name"):
        assert f"<code>{{{{ {variable} }}}}</code>" in page, variable
    assert f'value="{DEFAULT_SUBJECT}"' in page
    assert "London protest reminders" in page and "Old list" not in page
    assert re.search(r'<option value="\d+" selected>London protest reminders</option>', page)


def test_editing_shows_the_current_choice_and_saves_the_changes(db, sign_in_as):
    last_friday = create_event(title="Last Friday", rrule="FREQ=MONTHLY;BYDAY=-1FR", map_url=PARLIAMENT_MAP)
    advanced = create_event(
        title="Every other month", rrule="FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU", map_url=PARLIAMENT_MAP
    )
    editor = sign_in_as("editor")
    form = text(editor.get(f"{BASE}/{last_friday.id}/edit"))
    assert 'id="recurrence-weekday" checked' in form
    assert '<option selected value="-1">last</option>' in form and '<option selected value="FR">Friday</option>' in form
    assert 'value="Last Friday"' in form and 'value="18:00"' in form
    form = text(editor.get(f"{BASE}/{advanced.id}/edit"))
    assert 'id="recurrence-rrule" checked' in form and 'value="FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU"' in form
    page = f"{BASE}/{last_friday.id}/edit"
    changes = form_data(
        title="Last Friday vigil", recurrence="weekly", weekly_day="FR", start_time="19:30",
        days_before=["", "1", "", ""], at=["", "19:00", "", ""],
    )  # fmt: skip
    response = post_from(editor, page, page, **changes)
    assert response.status_code == 302
    assert "The event is saved." in flashed(text(editor.get(response.headers["Location"])))
    row = fresh(db).get(Event, last_friday.id)
    assert (row.title, row.rrule, row.start_time) == ("Last Friday vigil", "FREQ=WEEKLY;BYDAY=FR", time(19, 30))
    assert row.reminder_offsets == [{"days_before": 1, "at": "19:00"}]
    assert row.on_hold  # editing never resumes an event


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": "  "}, "Please give the title."),
        ({"place": "Embassy\r\nBcc: x@example.org"}, "The place can&#39;t contain line breaks"),
        ({"recurrence": "sometimes"}, "Choose how the event repeats."),
        ({"recurrence": "monthday", "month_day": "32"}, "Choose a day of the month."),
        ({"recurrence": "weekday", "ordinal": "5", "weekday": "SA"}, "Choose which weekday of the month"),
        ({"recurrence": "weekly", "weekly_day": "XX"}, "Choose the day of the week."),
        ({"recurrence": "rrule", "rrule": "FREQ=SOMETIMES"}, "A rule repeats DAILY, WEEKLY, MONTHLY or YEARLY"),
        ({"recurrence": "rrule", "rrule": "FREQ=MONTHLY;BYMONTHDAY=x"}, "That recurrence rule can&#39;t be read"),
        ({"recurrence": "rrule", "rrule": ""}, "Give a recurrence rule such as FREQ=MONTHLY;BYMONTHDAY=5"),
        ({"recurrence": "rrule", "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "That rule gives no dates"),
        (
            {"recurrence": "rrule", "rrule": "FREQ=DAILY;" + "BYHOUR=1;" * 80},
            "Please keep the recurrence rule under 500",
        ),
        ({"first_date": "5 March"}, "The first date could not be read"),
        ({"first_date": "9999-12-31"}, "The first date must be within ten years of today."),
        ({"start_time": "7pm"}, "The start time could not be read"),
        ({"start_time": "25:00"}, "The start time could not be read"),
        ({"duration_minutes": "two hours"}, "The duration in minutes must be a whole number."),
        ({"duration_minutes": "0"}, "The duration must be between 1 minute and 24 hours."),
        ({"map_url": "javascript:alert(1)"}, "The map link must be an https:// address."),
        ({"list_id": "newsletter"}, "Choose an active list to remind."),
        ({"list_id": "99999999999999"}, "Choose an active list to remind."),
        ({"days_before": ["3", "", "", ""], "at": ["10:00", "08:00", "", ""]}, "Reminder 2 needs both"),
        ({"days_before": ["61"], "at": ["10:00"]}, "A reminder can go out between 0 and 60 days before."),
        ({"days_before": ["-1"], "at": ["10:00"]}, "A reminder can go out between 0 and 60 days before."),
        ({"days_before": ["three"], "at": ["10:00"]}, "number of days before in reminder 1 must be a whole number"),
        ({"days_before": ["1"], "at": ["noon"]}, "The time of reminder 1 could not be read"),
        ({"days_before": ["1", "1"], "at": ["10:00", "10:00"]}, "The same reminder time is given twice."),
        ({"days_before": ["", ""], "at": ["", ""]}, "Give between one and ten reminder times."),
        ({"subject_template": "{{ config }}"}, "The reminder template can&#39;t be used"),
        ({"subject_template": "x" * 256}, "Please keep the subject template under 255 characters."),
        ({"body_template": "{% for x in %}"}, "The reminder template can&#39;t be used"),
        # A NUL byte is refused before the form is read, like every form's (tests/test_bad_input.py).
    ],
)
def test_invalid_events_are_explained_and_nothing_is_stored(db, sign_in_as, changes, message):
    response = post_from(sign_in_as("editor"), f"{BASE}/new", f"{BASE}/new", **form_data(**changes))
    assert response.status_code == 400
    assert message in alert(text(response))
    assert [row.title for row in event_rows(db)] == [SEEDED_TITLE]
    assert 'value="Parliament Square, London"' in text(response) or "place" in changes  # what was typed is kept


def test_an_invalid_edit_changes_nothing_and_keeps_what_was_typed(db, sign_in_as):
    event = create_event(map_url=PARLIAMENT_MAP)
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}/edit"
    response = post_from(
        editor,
        page,
        page,
        **form_data(title="Renamed", recurrence="weekday", ordinal="2", weekday="TU", start_time="9"),
    )
    assert response.status_code == 400 and "The start time could not be read" in alert(text(response))
    form = text(response)
    assert 'value="Renamed"' in form and 'id="recurrence-weekday" checked' in form
    assert (
        '<option selected value="2">second</option>' in form and '<option selected value="TU">Tuesday</option>' in form
    )
    row = fresh(db).get(Event, event.id)
    assert (row.title, row.rrule, row.start_time) == (
        "Vigil for the disappeared",
        "FREQ=MONTHLY;BYMONTHDAY=5",
        time(18),
    )
    assert editor.get(f"{BASE}/999999/edit").status_code == 404
    assert editor.get(f"{BASE}/99999999999/edit").status_code == 404


# Hold and resume


def test_hold_needs_a_reason_and_resume_makes_the_event_active(db, sign_in_as):
    event = create_event(map_url=PARLIAMENT_MAP)
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}"
    shown = text(editor.get(page))
    assert 'id="resume-form"' in shown and 'id="hold-form"' not in shown
    response = post_from(editor, page, f"{page}/resume")
    assert response.status_code == 302
    shown = text(editor.get(page))
    assert "The event is active: reminders go out from now on." in flashed(shown)
    assert '<span class="status status-active" id="event-status">active</span>' in shown
    assert 'id="hold-form"' in shown and "status-to-come" in shown
    assert fresh(db).get(Event, event.id).on_hold is False
    assert editor.post(f"{page}/hold", data={"reason": "No token"}).status_code == 400  # CSRF
    assert fresh(db).get(Event, event.id).on_hold is False
    again = post_from(editor, page, f"{page}/resume")
    assert again.status_code == 409 and "This event is not on hold." in alert(text(again))
    blank = post_from(editor, page, f"{page}/hold", reason="  ")
    assert blank.status_code == 400 and "Please give the reason for the hold." in alert(text(blank))
    assert fresh(db).get(Event, event.id).on_hold is False
    response = post_from(editor, page, f"{page}/hold", reason="The embassy road is closed for works")
    shown = text(editor.get(response.headers["Location"]))
    assert "The event is on hold: no reminders go out until it is resumed." in flashed(shown)
    assert '<span id="hold-reason">The embassy road is closed for works</span>' in shown
    assert "status-on-hold" in shown
    assert fresh(db).scalar(sa.text("SELECT count(*) FROM campaigns")) == 0  # no notices were asked for


def test_hold_and_resume_notices_reach_the_list(db, sign_in_as, worker, smtp_sink):
    event = create_event(map_url=PARLIAMENT_MAP)
    (address,) = add_confirmed(1, mailing_list=reminders_list())
    add_confirmed(1)  # on the Newsletter only: gets no notice
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}"
    upcoming = services.next_occurrence(event)
    shown = text(editor.get(page))
    assert f"Send a “protests resume on {day_words(upcoming.date)}” notice to London protest reminders" in shown
    assert "1 person confirmed" in shown
    response = post_from(editor, page, f"{page}/resume", notice="y")
    assert "The notice is on its way to the list." in flashed(text(editor.get(response.headers["Location"])))
    (resumed,) = smtp_sink.wait_for(address)
    assert resumed.message["Subject"] == f"Protests resume on {upcoming.date.day} {upcoming.date:%B}: {event.title}"
    assert f"{upcoming.starts_at:%A %-d %B %Y} at 18:00" in resumed.text()
    response = post_from(editor, page, f"{page}/hold", reason="Paused while the police review the site", notice="y")
    assert response.status_code == 302
    paused = smtp_sink.wait_for(address, count=2)[1]
    assert paused.message["Subject"] == f"Protests paused: {event.title}"
    assert "Paused while the police review the site" in paused.text()
    assert len(smtp_sink.messages) == 2
    assert fresh(db).get(Event, event.id).hold_reason == "Paused while the police review the site"


def test_a_notice_to_an_empty_list_is_refused_and_the_event_stays_as_it_was(db, sign_in_as):
    event = create_event(map_url=PARLIAMENT_MAP)
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}"
    response = post_from(editor, page, f"{page}/resume", notice="y")
    assert response.status_code == 400 and "Nobody is confirmed" in alert(text(response))
    assert fresh(db).get(Event, event.id).on_hold is True
    assert fresh(db).scalar(sa.text("SELECT count(*) FROM campaigns")) == 0


# One date at a time


def test_a_date_can_be_cancelled_changed_and_cleared(db, sign_in_as):
    event = create_event(resumed=True, map_url=PARLIAMENT_MAP)
    first, second, _ = upcoming_dates(event)
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}"
    shown = text(editor.get(page))
    assert f'action="{page}/dates/{first.isoformat()}"' in shown and "Change this date" in shown
    response = post_from(editor, page, f"{page}/dates/{first.isoformat()}", cancelled="y", change="save")
    shown = text(editor.get(response.headers["Location"]))
    assert f"{day_words(first)} is cancelled. Its reminders will not be sent." in flashed(shown)
    card = shown.split(f'id="date-{first.isoformat()}"', 1)[1].split("</li>", 1)[0]
    assert '<span class="status status-cancelled">cancelled</span>' in card and "will not be sent" in card
    assert f'id="cancelled-{first.isoformat()}" name="cancelled" type="checkbox" value="y"' in card
    response = post_from(
        editor, page, f"{page}/dates/{second.isoformat()}",
        start_time="19:15", place="Downing Street", note="Meet by the gates", change="save",
    )  # fmt: skip
    assert f"{day_words(second)} is changed." in flashed(text(editor.get(response.headers["Location"])))
    override = fresh(db).scalar(sa.select(OccurrenceOverride).where(OccurrenceOverride.occurrence_date == second))
    assert (override.cancelled, override.start_time, override.place, override.note) == (
        False, time(19, 15), "Downing Street", "Meet by the gates"
    )  # fmt: skip
    card = text(editor.get(page)).split(f'id="date-{second.isoformat()}"', 1)[1].split("</li>", 1)[0]
    assert "19:15" in card and "Downing Street" in card and "Note: Meet by the gates" in card
    assert 'value="Meet by the gates"' in card and "status-changed" in card
    response = post_from(editor, page, f"{page}/dates/{second.isoformat()}", note="ignored", change="clear")
    assert f"{day_words(second)} is back to what the rule gives." in flashed(
        text(editor.get(response.headers["Location"]))
    )
    remaining = fresh(db).scalars(sa.select(OccurrenceOverride.occurrence_date)).all()
    assert remaining == [first]


@pytest.mark.parametrize(
    ("day", "data", "status", "message"),
    [
        ("next", {"cancelled": "y"}, 400, "is not a date of this event."),
        ("next", {"start_time": "half past six"}, 400, "The different time could not be read"),
        ("next", {"note": "x" * 1001}, 400, "Please keep the note under 1,000 characters."),
        ("next", {"place": "Line\nbreak"}, 400, "The place can&#39;t contain line breaks"),
        ("2027-02-30", {"cancelled": "y"}, 400, "The date could not be read"),
        ("1999-01-05", {"cancelled": "y"}, 400, "5 January 1999 is not a date of this event."),
    ],
)
def test_changes_to_a_date_are_refused_with_a_message_and_store_nothing(db, sign_in_as, day, data, status, message):
    event = create_event(resumed=True, map_url=PARLIAMENT_MAP)
    following = upcoming_dates(event)[0]
    if day == "next":
        # A day the rule does not give for the first case; the rule's own date for the others.
        day = (following + timedelta(days=1)).isoformat() if "cancelled" in data else following.isoformat()
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}"
    response = post_from(editor, page, f"{page}/dates/{day}", change="save", **data)
    assert response.status_code == status
    assert message in alert(text(response))
    assert fresh(db).scalar(sa.select(sa.func.count()).select_from(OccurrenceOverride)) == 0
    assert editor.post(f"{page}/dates/not-a-date-at-all", data=form_fields(text(editor.get(page)))).status_code == 404


def test_a_refused_change_reopens_that_date_with_what_was_typed(db, sign_in_as):
    event = create_event(resumed=True, map_url=PARLIAMENT_MAP)
    following = upcoming_dates(event)[0].isoformat()
    editor = sign_in_as("editor")
    page = f"{BASE}/{event.id}"
    response = post_from(editor, page, f"{page}/dates/{following}", place="Trafalgar Square", start_time="six")
    card = text(response).split(f'id="date-{following}"', 1)[1].split("</li>", 1)[0]
    assert '<details class="change-date" open>' in card and 'value="Trafalgar Square"' in card


# What comes next, what was sent, the preview


def test_the_next_dates_show_each_reminder_in_london_time_with_what_became_of_it(db, sign_in_as):
    event = create_event(resumed=True, map_url=PARLIAMENT_MAP)
    first, second, _ = upcoming_dates(event)
    campaign = make_campaign("Reminder sent earlier")
    database.session.add_all(
        [
            Reminder(event_id=event.id, occurrence_date=first, offset_key="3d@10:00", status=ReminderStatus.SENT,
                     due_at=utcnow(), campaign_id=campaign.id),
            Reminder(event_id=event.id, occurrence_date=date(2026, 10, 5), offset_key="0d@08:00",
                     status=ReminderStatus.SKIPPED, due_at=utcnow() - timedelta(days=40)),
            Reminder(event_id=event.id, occurrence_date=date(2026, 9, 5), offset_key="3d@10:00",
                     status=ReminderStatus.LATE, due_at=utcnow() - timedelta(days=70)),
        ]
    )  # fmt: skip
    database.session.commit()
    page = text(sign_in_as("viewer").get(f"{BASE}/{event.id}"))
    card = page.split(f'id="date-{first.isoformat()}"', 1)[1].split("</li>", 1)[0]
    assert '<span class="status status-sent">sent</span>' in card
    assert f'<a href="/organisers/campaigns/{campaign.id}">campaign' in card
    assert '<span class="status status-to-come">to come</span>' in card  # the morning reminder
    due = services.upcoming_with_reminders(event, 2)[1][1]
    later = text_of_due(due[0].time.due_at)
    card = page.split(f'id="date-{second.isoformat()}"', 1)[1].split("</li>", 1)[0]
    assert later in card and "3 days before at 10:00" in card and card.count("to come") == 2
    log = page.split('id="reminder-log"', 1)[1].split("</table>", 1)[0]
    assert log.index(day_words(first)) < log.index("Monday 5 October 2026") < log.index("Saturday 5 September 2026")
    assert (
        '<span class="status status-skipped">skipped</span>' in log
        and '<span class="status status-late">late</span>' in log
    )
    legend = page.split('id="status-legend"', 1)[1].split("</dl>", 1)[0]
    assert "the protest had begun when the system came back" in legend and "because the system was down" in legend


def text_of_due(moment) -> str:
    """How the page words a due time: '2 Feb 2027, 10:00 GMT'."""
    from uscmail.campaigns.forms import london_short

    return london_short(moment)


def test_the_preview_shows_the_next_reminder_exactly_as_sent_under_its_own_policy(db, sign_in_as):
    event = create_event(resumed=True, map_url=PARLIAMENT_MAP)
    following = services.next_occurrence(event)
    viewer = sign_in_as("viewer")
    page = text(viewer.get(f"{BASE}/{event.id}"))
    subject = f"Protest {following.starts_at:%A %-d %B %Y}: Vigil for the disappeared"
    assert f'<strong id="preview-subject">{subject}</strong>' in page
    assert re.search(rf'<iframe class="preview-frame"[^>]* sandbox="" [^>]*src="{BASE}/{event.id}/preview"', page)
    response = viewer.get(f"{BASE}/{event.id}/preview")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PREVIEW_CSP
    html = text(response)
    assert f"{following.starts_at:%A %-d %B %Y} at 18:00" in html and "Parliament Square, London" in html
    assert "Alex" in html and "{{" not in html
    assert fresh(db).scalar(sa.text("SELECT count(*) FROM campaigns")) == 0  # previews keep nothing
    assert viewer.get(f"{BASE}/999999/preview").status_code == 404
