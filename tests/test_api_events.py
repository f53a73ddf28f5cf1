"""The event endpoints of /api/v1: recurring protests, their dates, overrides and reminders, hold and resume with
notices that really arrive; roles, errors that store nothing, the document."""

from datetime import UTC, date, datetime, time

import pytest
import sqlalchemy as sa
import time_machine

from tests.api_support import assert_json_error, assert_matches, assert_roles_enforced, audit_actions
from tests.campaign_support import wait_for_status
from tests.factories import add_confirmed, create_event, make_campaign, reminders_list
from uscmail.campaigns.models import Campaign, CampaignKind, CampaignStatus
from uscmail.models import utcnow
from uscmail.organisers.models import AuditEvent
from uscmail.reminders import planning, services, tasks
from uscmail.reminders.models import Event, OccurrenceOverride, Reminder, ReminderStatus
from uscmail.subscribers import lists as list_services

NEW = {
    "title": "Vigil for the disappeared",
    "place": "Parliament Square, London",
    "list": "london-protest-reminders",
    "rrule": "FREQ=MONTHLY;BYMONTHDAY=5",
    "first_date": "2027-01-01",
    "start_time": "18:00",
}
# Mid-January 2027: the next protests are on 5 February (GMT) and 5 April (BST).
JANUARY = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)


def seeded_event_id(db) -> int:
    return db.session.scalar(sa.select(Event.id).order_by(Event.id).limit(1))


def rows(db) -> dict[str, int]:
    """Rows in the tables an event request may touch."""
    db.session.rollback()
    models = {"events": Event, "overrides": OccurrenceOverride, "reminders": Reminder, "campaigns": Campaign}
    models["audit"] = AuditEvent
    return {name: db.session.scalar(sa.select(sa.func.count()).select_from(model)) for name, model in models.items()}


def stored(db, event_id: int) -> Event | None:
    db.session.rollback()
    return db.session.get(Event, event_id)


def add_reminder(db, event_id: int, day: date, key: str, status: ReminderStatus, campaign_id: int | None = None):
    """A reminder decision as the beat records it."""
    due_at = datetime.combine(day, time(8, 0), tzinfo=UTC)
    db.session.add(
        Reminder(
            event_id=event_id,
            occurrence_date=day,
            offset_key=key,
            due_at=due_at,
            status=status,
            campaign_id=campaign_id,
        )
    )
    db.session.commit()


# --- creating and changing ------------------------------------------------------------------------------------------


def test_an_editor_creates_reads_lists_and_changes_an_event(app, db, api, editor, viewer):
    with time_machine.travel(JANUARY, tick=False):
        body = {
            **NEW,
            "duration_minutes": 90,
            "map_url": "https://www.openstreetmap.org/?mlat=51.5005&mlon=-0.1265",
            "reminder_offsets": [{"days_before": 2, "at": "19:00"}, {"days_before": 0, "at": "08:00"}],
        }
        created = api("POST", "/api/v1/events", editor, json=body)
        assert created.status_code == 201, created.json
        assert_matches(app, "Event", created.json)
        event = created.json
        assert created.headers["Location"].endswith(f"/api/v1/events/{event['id']}")
        # New events wait on hold until an organiser has reviewed them.
        assert event["on_hold"] is True and event["hold_reason"].startswith("New")
        assert (event["title"], event["place"], event["list"]) == (NEW["title"], NEW["place"], NEW["list"])
        assert (event["rrule"], event["rule_text"]) == ("FREQ=MONTHLY;BYMONTHDAY=5", "on the 5th of every month")
        assert (event["first_date"], event["start_time"], event["duration_minutes"]) == ("2027-01-01", "18:00", 90)
        assert event["timezone"] == "Europe/London" and event["map_url"] == body["map_url"]
        assert event["reminder_offsets"] == body["reminder_offsets"]
        assert event["subject_template"] == planning.DEFAULT_SUBJECT
        assert event["body_template"] == planning.DEFAULT_BODY
        assert event["next_occurrence"] == {
            "date": "2027-02-05",
            "starts_at": "2027-02-05T18:00:00+00:00",
            "ends_at": "2027-02-05T19:30:00+00:00",
            "starts_at_local": "2027-02-05T18:00:00+00:00",
            "ends_at_local": "2027-02-05T19:30:00+00:00",
            "place": NEW["place"],
            "note": None,
            "cancelled": False,
        }
        assert event["created_at"].endswith("+00:00")

        assert api("GET", f"/api/v1/events/{event['id']}", viewer).json == event
        listed = api("GET", "/api/v1/events", viewer)
        assert listed.status_code == 200
        assert_matches(app, "EventPage", listed.json)
        # The seeded protest comes first: on hold, no time set, so no next date.
        seeded, mine = listed.json["items"]
        assert (seeded["title"], seeded["start_time"], seeded["next_occurrence"]) == (
            "Monthly protest at the Chinese Embassy",
            None,
            None,
        )
        assert mine == event

        path = f"/api/v1/events/{event['id']}"
        moved = api("PATCH", path, editor, json={"place": "Oxford Circus", "start_time": "18:30"})
        assert moved.status_code == 200, moved.json
        assert (moved.json["place"], moved.json["start_time"]) == ("Oxford Circus", "18:30")
        # A partial update leaves the other fields as they were.
        assert (moved.json["title"], moved.json["rrule"], moved.json["reminder_offsets"]) == (
            NEW["title"],
            NEW["rrule"],
            body["reminder_offsets"],
        )
        assert moved.json["next_occurrence"]["starts_at"] == "2027-02-05T18:30:00+00:00"

        # In summer, 18:00 in London is 17:00 UTC.
        summer = api("PATCH", path, editor, json={"first_date": "2027-04-01", "start_time": "18:00"})
        assert summer.json["next_occurrence"]["date"] == "2027-04-05"
        assert summer.json["next_occurrence"]["starts_at"] == "2027-04-05T17:00:00+00:00"
        assert summer.json["next_occurrence"]["starts_at_local"] == "2027-04-05T18:00:00+01:00"

        weekly = api("PATCH", path, editor, json={"rrule": "FREQ=WEEKLY;BYDAY=TH", "subject_template": None})
        assert weekly.json["rule_text"] == "every Thursday" and weekly.json["next_occurrence"]["date"] == "2027-04-01"
        assert weekly.json["subject_template"] == planning.DEFAULT_SUBJECT
        # Twice a month: the rule is shown as written where there are no words for it.
        twice = api("PATCH", path, editor, json={"rrule": "FREQ=MONTHLY;BYMONTHDAY=5,20", "list": "newsletter"})
        assert twice.status_code == 200, twice.json
        assert twice.json["rule_text"] == "FREQ=MONTHLY;BYMONTHDAY=5,20" and twice.json["list"] == "newsletter"
        assert twice.json["next_occurrence"]["date"] == "2027-04-05"
        untimed = api("PATCH", path, editor, json={"start_time": None, "map_url": None})
        assert untimed.status_code == 200, untimed.json
        assert (untimed.json["start_time"], untimed.json["map_url"], untimed.json["next_occurrence"]) == (None,) * 3

    assert [(action, actor) for action, actor, _, _ in audit_actions(db, "event.")] == [
        ("event.create", "editor@example.org"),
        ("event.update", "editor@example.org"),
        ("event.update", "editor@example.org"),
        ("event.update", "editor@example.org"),
        ("event.update", "editor@example.org"),
        ("event.update", "editor@example.org"),
    ]


@pytest.mark.parametrize(
    ("send", "status", "fragment"),
    [
        ({"data": "title=Vigil", "content_type": "application/x-www-form-urlencoded"}, 415, "JSON"),
        ({"data": '{"title": ', "content_type": "application/json"}, 400, "not valid JSON"),
        ({"json": [NEW]}, 400, "JSON object"),
        ({"json": {k: v for k, v in NEW.items() if k != "list"}}, 400, "Missing field(s): list"),
        ({"json": {**NEW, "on_hold": False}}, 400, "Unknown field(s): on_hold"),
        ({"json": {**NEW, "title": 5}}, 400, "'title' must be a string"),
        ({"json": {**NEW, "place": None}}, 400, "'place' must be a string"),
        ({"json": {**NEW, "list": ["london-protest-reminders"]}}, 400, "'list' must be a string"),
        ({"json": {**NEW, "first_date": "05/01/2027"}}, 400, "'first_date' must be a date as YYYY-MM-DD"),
        ({"json": {**NEW, "first_date": "2027-02-30"}}, 400, "'first_date'"),
        ({"json": {**NEW, "start_time": "6pm"}}, 400, "'start_time' must be a time as HH:MM"),
        ({"json": {**NEW, "start_time": "24:00"}}, 400, "'start_time'"),
        ({"json": {**NEW, "start_time": "18:00:00"}}, 400, "'start_time'"),
        ({"json": {**NEW, "start_time": "1\u0668:00"}}, 400, "'start_time'"),  # an Arabic-Indic eight
        ({"json": {**NEW, "duration_minutes": "90"}}, 400, "'duration_minutes' must be a whole number"),
        ({"json": {**NEW, "duration_minutes": True}}, 400, "'duration_minutes'"),
        ({"json": {**NEW, "reminder_offsets": "3 days before"}}, 400, "'reminder_offsets'"),
        ({"json": {**NEW, "reminder_offsets": [{"days_before": 3}]}}, 400, "'reminder_offsets'"),
        ({"json": {**NEW, "reminder_offsets": [{"days_before": "3", "at": "10:00"}]}}, 400, "'reminder_offsets'"),
        ({"json": {**NEW, "reminder_offsets": [{"days_before": 3, "at": "10am"}]}}, 400, "'reminder_offsets'"),
        ({"json": {**NEW, "reminder_offsets": None}}, 400, "'reminder_offsets'"),
        ({"json": {**NEW, "list": "no-such-list"}}, 422, "Unknown list(s): 'no-such-list'"),
        ({"json": {**NEW, "list": "old-news"}}, 422, "Choose an active list"),
        ({"json": {**NEW, "title": "   "}}, 422, "give the title"),
        ({"json": {**NEW, "title": "x" * 201}}, 422, "under 200 characters"),
        ({"json": {**NEW, "place": "Embassy\r\nBcc: everyone@example.org"}}, 422, "line breaks"),
        ({"json": {**NEW, "title": "NUL\x00byte"}}, 422, "control characters"),
        ({"json": {**NEW, "place": "lone \ud800 surrogate"}}, 422, "control characters"),
        ({"json": {**NEW, "rrule": "FREQ=MONTHLY;BYMONTHDAY=xx"}}, 422, "can't be read"),
        ({"json": {**NEW, "rrule": "FREQ=SECONDLY"}}, 422, "A rule repeats DAILY, WEEKLY, MONTHLY or YEARLY"),
        ({"json": {**NEW, "rrule": "FREQ=MONTHLY;INTERVAL=0"}}, 422, "INTERVAL must be a whole number"),
        ({"json": {**NEW, "rrule": "FREQ=DAILY;BYHOUR=18"}}, 422, "can't use BYHOUR"),
        ({"json": {**NEW, "rrule": "FREQ=DAILY;BYEASTER=400"}}, 422, "can't use BYEASTER"),
        ({"json": {**NEW, "rrule": "FREQ=MONTHLY;BYDAY=9MO"}}, 422, "can't be used"),
        ({"json": {**NEW, "rrule": "FREQ=MONTHLY;BYMONTHDAY=5;" + "X" * 500}}, 422, "under 500 characters"),
        ({"json": {**NEW, "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}}, 422, "no dates in the next year"),
        ({"json": {**NEW, "first_date": "2040-01-01"}}, 422, "within ten years"),
        ({"json": {**NEW, "timezone": "Mars/Olympus"}}, 422, "not a time zone"),
        ({"json": {**NEW, "timezone": "Europe"}}, 422, "not a time zone"),
        ({"json": {**NEW, "timezone": "Europe/" + "x" * 300}}, 422, "not a time zone"),
        ({"json": {**NEW, "duration_minutes": 0}}, 422, "duration"),
        ({"json": {**NEW, "map_url": "javascript:alert(1)"}}, 422, "https://"),
        ({"json": {**NEW, "map_url": "https://example.org/\x00"}}, 422, "NUL"),
        ({"json": {**NEW, "reminder_offsets": []}}, 422, "between one and ten"),
        ({"json": {**NEW, "reminder_offsets": [{"days_before": 61, "at": "10:00"}]}}, 422, "between 0 and 60"),
        ({"json": {**NEW, "reminder_offsets": [{"days_before": 3, "at": "10:00"}] * 2}}, 422, "twice"),
        ({"json": {**NEW, "subject_template": "{{ config }}"}}, 422, "can't be used"),
        ({"json": {**NEW, "subject_template": "x" * 256}}, 422, "under 255 characters"),
        ({"json": {**NEW, "body_template": "Hello {{ ''.__class__ }}"}}, 422, "can't be used"),
        ({"json": {**NEW, "body_template": "Hello\x00"}}, 422, "NUL"),
    ],
)
def test_bad_events_get_a_clear_error_and_store_nothing(db, api, editor, send, status, fragment):
    archived = list_services.create_list("old-news", "Old news", "", False, "test")
    list_services.update_list(archived, "Old news", "", False, True, "test")
    db.session.commit()
    before = rows(db)
    assert_json_error(api("POST", "/api/v1/events", editor, **send), status, fragment)
    assert rows(db) == before


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 400, "Send at least one of"),
        ({"on_hold": False}, 400, "Unknown field(s): on_hold"),
        ({"title": None}, 400, "'title' must be a string"),
        ({"start_time": "7pm"}, 400, "'start_time'"),
        ({"title": "New\nline"}, 422, "line breaks"),
        ({"list": "no-such-list"}, 422, "Unknown list"),
        ({"rrule": "FREQ=HOURLY"}, 422, "A rule repeats"),
        ({"subject_template": "{% if %}"}, 422, "can't be used"),
    ],
)
def test_bad_changes_change_nothing(db, api, editor, body, status, fragment):
    event_id = create_event().id
    before = rows(db)
    assert_json_error(api("PATCH", f"/api/v1/events/{event_id}", editor, json=body), status, fragment)
    assert rows(db) == before
    event = stored(db, event_id)
    assert (event.title, event.rrule, event.start_time, event.list_id) == (
        NEW["title"],
        NEW["rrule"],
        time(18, 0),
        reminders_list().id,
    )


def test_unknown_ids_are_404_and_bad_queries_400(db, api, editor, viewer):
    for event_id in (424242, 99999999999):
        for method, path in [
            ("GET", ""),
            ("GET", "/occurrences"),
            ("GET", "/reminders"),
        ]:
            assert_json_error(api(method, f"/api/v1/events/{event_id}{path}", viewer), 404, "no event with that id")
        for method, path, body in [
            ("PATCH", "", {"title": "x"}),
            ("DELETE", "", None),
            ("POST", "/hold", {"reason": "x"}),
            ("POST", "/resume", None),
            ("PUT", "/occurrences/2027-02-05", {"cancelled": True}),
            ("DELETE", "/occurrences/2027-02-05", None),
        ]:
            assert_json_error(api(method, f"/api/v1/events/{event_id}{path}", editor, json=body), 404, "no event")
    event_id = create_event().id
    for path, fragment in [
        ("/api/v1/events?limit=5", "takes no query parameters (got: limit)"),
        (f"/api/v1/events/{event_id}/occurrences?count=0", "'count' must be a whole number from 1 to 60"),
        (f"/api/v1/events/{event_id}/occurrences?count=61", "'count'"),
        (f"/api/v1/events/{event_id}/occurrences?count=six", "'count'"),
        (f"/api/v1/events/{event_id}/occurrences?count=1&count=2", "once"),
        (f"/api/v1/events/{event_id}/occurrences?from=2027-01-01", "Unknown query parameter(s): from"),
        (f"/api/v1/events/{event_id}/reminders?limit=0", "'limit'"),
        (f"/api/v1/events/{event_id}/reminders?limit=201", "'limit'"),
    ]:
        assert_json_error(api("GET", path, viewer), 400, fragment)


# --- roles ----------------------------------------------------------------------------------------------------------

WRITES = [
    ("POST", "/api/v1/events", NEW),
    ("PATCH", "/api/v1/events/{id}", {"title": "x"}),
    ("DELETE", "/api/v1/events/{id}", None),
    ("POST", "/api/v1/events/{id}/hold", {"reason": "Road closed"}),
    ("POST", "/api/v1/events/{id}/resume", None),
    ("PUT", "/api/v1/events/{id}/occurrences/2027-02-05", {"cancelled": True}),
    ("DELETE", "/api/v1/events/{id}/occurrences/2027-02-05", None),
]
READS = [
    "/api/v1/events",
    "/api/v1/events/{id}",
    "/api/v1/events/{id}/occurrences",
    "/api/v1/events/{id}/reminders",
]


def test_viewers_read_but_cannot_write_and_nothing_works_without_a_token(db, api, viewer):
    event_id = create_event().id
    before = rows(db)
    writes = [(method, path.format(id=event_id), body) for method, path, body in WRITES]
    assert_roles_enforced(api, viewer, writes, [path.format(id=event_id) for path in READS])
    assert rows(db) == before and stored(db, event_id).on_hold


# --- hold and resume ------------------------------------------------------------------------------------------------


def test_hold_and_resume_change_the_state_once_and_say_why_not(app, db, api, editor):
    event_id = create_event().id
    path = f"/api/v1/events/{event_id}"

    assert_json_error(api("POST", f"{path}/resume", editor, data="now", content_type="text/plain"), 415)
    assert_json_error(api("POST", f"{path}/resume", editor, json={"now": True}), 400, "Unknown field(s): now")
    assert_json_error(api("POST", f"{path}/resume", editor, json={"notice": "yes"}), 400, "'notice' must be true")
    resumed = api("POST", f"{path}/resume", editor)
    assert resumed.status_code == 200, resumed.json
    assert_matches(app, "HoldResult", resumed.json)
    assert resumed.json["notice_campaign_id"] is None
    assert (resumed.json["event"]["on_hold"], resumed.json["event"]["hold_reason"]) == (False, None)
    assert_json_error(api("POST", f"{path}/resume", editor, json={}), 409, "This event is not on hold.")

    before = rows(db)
    for body, status, fragment in [
        ({}, 400, "Missing field(s): reason"),
        ({"reason": 5}, 400, "'reason' must be a string"),
        ({"reason": "Road closed", "notice": 1}, 400, "'notice' must be true or false"),
        ({"reason": "Road closed", "until": "2027-03-01"}, 400, "Unknown field(s): until"),
        ({"reason": "  "}, 422, "Please give the reason for the hold"),
        ({"reason": "Road\nclosed"}, 422, "line breaks"),
        ({"reason": "x" * 501}, 422, "under 500 characters"),
        # A notice needs someone to send it to; the hold is refused with it.
        ({"reason": "Road closed", "notice": True}, 422, "Nobody is confirmed on the chosen lists"),
    ]:
        assert_json_error(api("POST", f"{path}/hold", editor, json=body), status, fragment)
    assert_json_error(api("POST", f"{path}/hold", editor, data="x", content_type="text/plain"), 415)
    assert rows(db) == before and not stored(db, event_id).on_hold

    held = api("POST", f"{path}/hold", editor, json={"reason": "Police have closed the road", "notice": False})
    assert held.status_code == 200, held.json
    assert (held.json["event"]["on_hold"], held.json["event"]["hold_reason"]) == (True, "Police have closed the road")
    assert held.json["notice_campaign_id"] is None
    # State first: a second hold is a conflict, whatever its reason.
    assert_json_error(api("POST", f"{path}/hold", editor, json={"reason": " "}), 409, "already on hold")

    # Without a start time nothing could be sent: resuming is refused until it is set.
    seeded = seeded_event_id(db)
    before = rows(db)
    assert_json_error(api("POST", f"/api/v1/events/{seeded}/resume", editor), 422, "Set the start time")
    assert rows(db) == before and stored(db, seeded).on_hold
    assert [action for action, _, _, _ in audit_actions(db, "event.")][-2:] == ["event.resume", "event.hold"]


def test_hold_and_resume_notices_reach_the_list(app, db, api, editor, worker, smtp_sink):
    addresses = add_confirmed(2, mailing_list=reminders_list())
    created = api("POST", "/api/v1/events", editor, json={**NEW, "first_date": utcnow().date().isoformat()})
    assert created.status_code == 201, created.json
    path = f"/api/v1/events/{created.json['id']}"
    assert api("POST", f"{path}/resume", editor).status_code == 200

    held = api("POST", f"{path}/hold", editor, json={"reason": "The embassy is closed for repairs.", "notice": True})
    assert held.status_code == 202, held.json
    assert_matches(app, "HoldResult", held.json)
    paused_id = held.json["notice_campaign_id"]
    assert held.json["event"]["on_hold"] is True and isinstance(paused_id, int)
    for address in addresses:
        [mail] = smtp_sink.wait_for(address)
        assert mail.message["Subject"] == f"Protests paused: {NEW['title']}"
        assert "The embassy is closed for repairs." in mail.text() and "Dear Supporter" in mail.text()
    wait_for_status(paused_id, CampaignStatus.SENT)

    resumed = api("POST", f"{path}/resume", editor, json={"notice": True})
    assert resumed.status_code == 202, resumed.json
    resumed_id = resumed.json["notice_campaign_id"]
    assert resumed_id not in (None, paused_id) and resumed.json["event"]["on_hold"] is False
    upcoming = datetime.fromisoformat(resumed.json["event"]["next_occurrence"]["starts_at_local"])
    for address in addresses:
        mail = smtp_sink.wait_for(address, count=2)[1]
        assert mail.message["Subject"] == f"Protests resume on {upcoming:%-d %B}: {NEW['title']}"
        assert f"{upcoming:%A %-d %B %Y at %H:%M}" in mail.text() and NEW["place"] in mail.text()
    wait_for_status(resumed_id, CampaignStatus.SENT)
    notice = api("GET", f"/api/v1/campaigns/{resumed_id}", editor).json
    assert (notice["kind"], notice["lists"], notice["status"]) == ("reminder", [NEW["list"]], "sent")
    assert [(action, details) for action, _, _, details in audit_actions(db, "event.")][-3:] == [
        ("event.resume", {"notice": False}),
        ("event.hold", {"notice": True}),
        ("event.resume", {"notice": True}),
    ]


# --- dates, overrides and the reminder log --------------------------------------------------------------------------


def test_occurrences_show_each_dates_reminders_and_what_became_of_them(app, db, api, editor, viewer):
    add_confirmed(1, mailing_list=reminders_list())
    with time_machine.travel(JANUARY, tick=False):
        event_id = create_event(resumed=True).id
        path = f"/api/v1/events/{event_id}"
        cancelled = api("PUT", f"{path}/occurrences/2027-03-05", editor, json={"cancelled": True})
        assert cancelled.status_code == 200, cancelled.json
        moved = {"start_time": "19:30", "place": "Oxford Circus", "note": "The embassy road is closed"}
        assert api("PUT", f"{path}/occurrences/2027-04-05", editor, json=moved).status_code == 200
    # The beat sends the 3-day reminder of 5 February (its campaign is queued; no worker sends mail in this test).
    with time_machine.travel(datetime(2027, 2, 2, 10, 1, tzinfo=UTC), tick=False):
        assert tasks.send_due_reminders() == 1
    [campaign_id] = db.session.scalars(sa.select(Reminder.campaign_id).where(Reminder.campaign_id.is_not(None))).all()
    with time_machine.travel(datetime(2027, 2, 4, 12, 0, tzinfo=UTC), tick=False):
        response = api("GET", f"{path}/occurrences?count=3", viewer)
        assert response.status_code == 200, response.json
        assert_matches(app, "OccurrencePage", response.json)
        february, march, april = response.json["items"]
        assert len(api("GET", f"{path}/occurrences", viewer).json["items"]) == 6
        # Dates are shown up to 400 days ahead: 14 monthly protests from 5 February 2027.
        assert len(api("GET", f"{path}/occurrences?count=60", viewer).json["items"]) == 14

    assert february == {
        "date": "2027-02-05",
        "starts_at": "2027-02-05T18:00:00+00:00",
        "ends_at": "2027-02-05T20:00:00+00:00",
        "starts_at_local": "2027-02-05T18:00:00+00:00",
        "ends_at_local": "2027-02-05T20:00:00+00:00",
        "place": NEW["place"],
        "note": None,
        "cancelled": False,
        "reminders": [
            {
                "offset": "3d@10:00",
                "due_at": "2027-02-02T10:00:00+00:00",
                "due_at_local": "2027-02-02T10:00:00+00:00",
                "status": "sent",
                "campaign_id": campaign_id,
            },
            {
                "offset": "0d@08:00",
                "due_at": "2027-02-05T08:00:00+00:00",
                "due_at_local": "2027-02-05T08:00:00+00:00",
                "status": "scheduled",
                "campaign_id": None,
            },
        ],
    }
    assert march["cancelled"] is True
    assert [(r["offset"], r["status"]) for r in march["reminders"]] == [
        ("3d@10:00", "cancelled"),
        ("0d@08:00", "cancelled"),
    ]
    # April is in summer time: 19:30 in London is 18:30 UTC, and the reminders keep their wall-clock times.
    assert (april["starts_at"], april["starts_at_local"]) == ("2027-04-05T18:30:00+00:00", "2027-04-05T19:30:00+01:00")
    assert (april["place"], april["note"], april["cancelled"]) == ("Oxford Circus", "The embassy road is closed", False)
    assert [(r["due_at"], r["due_at_local"]) for r in april["reminders"]] == [
        ("2027-04-02T09:00:00+00:00", "2027-04-02T10:00:00+01:00"),
        ("2027-04-05T07:00:00+00:00", "2027-04-05T08:00:00+01:00"),
    ]

    # Without a start time there are no dates to show.
    assert api("GET", f"/api/v1/events/{seeded_event_id(db)}/occurrences", viewer).json == {"items": []}


def test_the_reminder_log_lists_decisions_newest_first(app, db, api, viewer):
    event_id = create_event(resumed=True).id
    campaign_id = make_campaign().id
    add_reminder(db, event_id, date(2027, 2, 2), "3d@10:00", ReminderStatus.LATE, campaign_id)
    add_reminder(db, event_id, date(2027, 2, 5), "0d@08:00", ReminderStatus.SKIPPED)
    add_reminder(db, event_id, date(2027, 3, 2), "3d@10:00", ReminderStatus.CANCELLED)
    response = api("GET", f"/api/v1/events/{event_id}/reminders", viewer)
    assert response.status_code == 200, response.json
    assert_matches(app, "ReminderLog", response.json)
    assert [(r["occurrence_date"], r["offset"], r["status"], r["campaign_id"]) for r in response.json["items"]] == [
        ("2027-03-02", "3d@10:00", "cancelled", None),
        ("2027-02-05", "0d@08:00", "skipped", None),
        ("2027-02-02", "3d@10:00", "late", campaign_id),
    ]
    assert response.json["items"][0]["due_at"] == "2027-03-02T08:00:00+00:00"
    assert len(api("GET", f"/api/v1/events/{event_id}/reminders?limit=1", viewer).json["items"]) == 1
    assert api("GET", f"/api/v1/events/{create_event().id}/reminders", viewer).json == {"items": []}


def test_one_date_is_cancelled_moved_and_restored(app, db, api, editor, viewer):
    event_id = create_event().id
    path = f"/api/v1/events/{event_id}/occurrences/2027-02-05"
    with time_machine.travel(JANUARY, tick=False):
        cancelled = api("PUT", path, editor, json={"cancelled": True, "note": "Police have closed the road"})
        assert cancelled.status_code == 200, cancelled.json
        assert_matches(app, "StoredOverride", cancelled.json)
        assert cancelled.json == {
            "date": "2027-02-05",
            "cancelled": True,
            "start_time": None,
            "place": None,
            "note": "Police have closed the road",
        }
        [first] = api("GET", f"/api/v1/events/{event_id}/occurrences?count=1", viewer).json["items"]
        assert (first["cancelled"], first["note"]) == (True, "Police have closed the road")
        # The next date is the first one not cancelled.
        assert api("GET", f"/api/v1/events/{event_id}", viewer).json["next_occurrence"]["date"] == "2027-03-05"

        # PUT replaces the whole change: what is left out is cleared.
        moved = api("PUT", path, editor, json={"start_time": "19:30", "place": "Oxford Circus"})
        assert moved.json == {
            "date": "2027-02-05",
            "cancelled": False,
            "start_time": "19:30",
            "place": "Oxford Circus",
            "note": None,
        }
        [first] = api("GET", f"/api/v1/events/{event_id}/occurrences?count=1", viewer).json["items"]
        assert (first["starts_at"], first["place"], first["cancelled"]) == (
            "2027-02-05T19:30:00+00:00",
            "Oxford Circus",
            False,
        )
        assert api("DELETE", path, editor).status_code == 204
        [first] = api("GET", f"/api/v1/events/{event_id}/occurrences?count=1", viewer).json["items"]
        assert (first["starts_at"], first["place"]) == ("2027-02-05T18:00:00+00:00", NEW["place"])
        assert rows(db)["overrides"] == 0
        # All empty clears it too; clearing a date without a change is harmless.
        api("PUT", path, editor, json={"note": "Bring banners"})
        cleared = api("PUT", path, editor, json={"cancelled": False, "note": " "})
        assert cleared.json == {
            "date": "2027-02-05",
            "cancelled": False,
            "start_time": None,
            "place": None,
            "note": None,
        }
        assert rows(db)["overrides"] == 0
        assert api("DELETE", path, editor).status_code == 204
    assert [action for action, _, _, _ in audit_actions(db, "event.override")] == [
        "event.override",
        "event.override",
        "event.override_clear",
        "event.override",
        "event.override_clear",
        "event.override_clear",
    ]


@pytest.mark.parametrize(
    ("method", "day", "send", "status", "fragment"),
    [
        ("PUT", "2027-02-06", {"json": {"cancelled": True}}, 422, "6 February 2027 is not a date of this event"),
        ("PUT", "2026-12-05", {"json": {"cancelled": True}}, 422, "not a date of this event"),  # before first_date
        ("PUT", "2040-02-05", {"json": {"cancelled": True}}, 422, "within ten years"),
        ("PUT", "2027-13-05", {"json": {"cancelled": True}}, 400, "The date in the path must be a date as YYYY-MM-DD"),
        ("PUT", "tomorrow", {"json": {"cancelled": True}}, 400, "YYYY-MM-DD"),
        ("PUT", "2027-02-05", {"data": "cancelled", "content_type": "text/plain"}, 415, "JSON"),
        ("PUT", "2027-02-05", {"json": ["cancelled"]}, 400, "JSON object"),
        ("PUT", "2027-02-05", {"json": {"cancelled": "yes"}}, 400, "'cancelled' must be true or false"),
        ("PUT", "2027-02-05", {"json": {"start_time": "7.30pm"}}, 400, "'start_time'"),
        ("PUT", "2027-02-05", {"json": {"place": 5}}, 400, "'place' must be a string or null"),
        ("PUT", "2027-02-05", {"json": {"date": "2027-02-06"}}, 400, "Unknown field(s): date"),
        ("PUT", "2027-02-05", {"json": {"place": "Oxford\nCircus"}}, 422, "line breaks"),
        ("PUT", "2027-02-05", {"json": {"note": "x" * 1001}}, 422, "under 1,000 characters"),
        ("PUT", "2027-02-05", {"json": {"note": "NUL\x00byte"}}, 422, "NUL"),
        ("DELETE", "2027-02-06", {}, 422, "not a date of this event"),
        ("DELETE", "05-02-2027", {}, 400, "YYYY-MM-DD"),
    ],
)
def test_bad_date_changes_store_nothing(db, api, editor, method, day, send, status, fragment):
    event_id = create_event().id
    before = rows(db)
    response = api(method, f"/api/v1/events/{event_id}/occurrences/{day}", editor, **send)
    assert_json_error(response, status, fragment)
    assert rows(db) == before


# --- deleting -------------------------------------------------------------------------------------------------------


def test_an_event_is_deleted_only_while_none_of_its_reminders_has_gone_out(db, api, editor, viewer):
    unsent = create_event(resumed=True).id
    services.set_override(db.session.get(Event, unsent), date(2027, 2, 5), "test", cancelled=True)
    db.session.commit()
    add_reminder(db, unsent, date(2027, 2, 2), "3d@10:00", ReminderStatus.CANCELLED)
    newsletter_id = make_campaign().id
    before = rows(db)
    assert api("DELETE", f"/api/v1/events/{unsent}", editor).status_code == 204
    assert_json_error(api("GET", f"/api/v1/events/{unsent}", viewer), 404, "no event")
    after = rows(db)
    assert (after["events"], after["overrides"], after["reminders"]) == (before["events"] - 1, 0, 0)
    assert after["campaigns"] == before["campaigns"] and db.session.get(Campaign, newsletter_id) is not None
    [(action, actor, object_id, _)] = audit_actions(db, "event.delete")
    assert (action, actor, object_id) == ("event.delete", "editor@example.org", str(unsent))

    for status in (ReminderStatus.SENT, ReminderStatus.LATE):
        sent = create_event(resumed=True).id
        campaign_id = make_campaign(subject="Protest on Friday").id
        add_reminder(db, sent, date(2027, 2, 2), "3d@10:00", status, campaign_id)
        before = rows(db)
        assert_json_error(api("DELETE", f"/api/v1/events/{sent}", editor), 409, "Reminders of this event have been")
        assert rows(db) == before and stored(db, sent) is not None
        assert db.session.get(Campaign, campaign_id).kind is CampaignKind.NEWSLETTER


# --- the document ---------------------------------------------------------------------------------------------------


def test_every_event_route_is_documented_with_its_errors(app, db, api):
    document = api("GET", "/api/v1/openapi.json").json
    routed = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/events")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert len(routed) == 11
    for rule, method in routed:
        path = rule.replace("<int:event_id>", "{event_id}").replace("<occurrence_date>", "{occurrence_date}")
        operation = document["paths"][path][method.lower()]
        assert operation["tags"] == ["events"]
        if "{event_id}" in path:
            assert "404" in operation["responses"], (path, method)
        if method in {"POST", "PATCH", "PUT"}:
            assert {"400", "415", "422"} <= set(operation["responses"]), (path, method)
    for suffix in ("/hold", "/resume", ""):
        method = "delete" if not suffix else "post"
        assert "409" in document["paths"][f"/api/v1/events/{{event_id}}{suffix}"][method]["responses"]
    for name in ("NewEvent", "EventPatch"):
        assert set(document["components"]["schemas"][name]["properties"]) == {
            "title",
            "place",
            "list",
            "rrule",
            "first_date",
            "start_time",
            "duration_minutes",
            "timezone",
            "map_url",
            "reminder_offsets",
            "subject_template",
            "body_template",
        }
    assert "event" in document["paths"]["/api/v1/events/{event_id}"]["get"]["responses"]["404"]["description"]
