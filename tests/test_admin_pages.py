"""The organisers' pages: dashboard, subscribers, lists; roles enforced on the server; user data always escaped."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import isolated_client
from tests.factories import add_subscriber, mailing_list, make_subscriber
from tests.pages import fresh, post_from, text
from uscmail.models import (
    Consent,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from uscmail.organisers.models import AuditEvent
from uscmail.subscribers import services as subscriber_services
from uscmail.subscribers.services import ConsentMethod
from uscmail.suppression import address_hmac

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{SCRIPT} {BREAKOUT}"


# How the subscribers here were added: by an organiser from a paper form.
PAPER_FORM = {"method": ConsentMethod.IMPORT, "note": "Signed up at a stall, paper form kept"}


def statuses(db, subscriber_id: int) -> dict[str, tuple[str, str]]:
    rows = fresh(db).execute(
        sa.select(MailingList.slug, Subscription.status, Subscription.status_reason)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == subscriber_id)
    )
    return {slug: (status.value, reason.value) for slug, status, reason in rows}


def audit_actions(db) -> list[str]:
    return fresh(db).scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()


# Home and navigation


def test_home_and_nav_link_to_the_organisers_pages_by_role(sign_in_as):
    viewer = text(sign_in_as("viewer").get("/organisers/"))
    for path in ("/organisers/dashboard", "/organisers/subscribers", "/organisers/lists"):
        assert f'href="{path}"' in viewer
    assert 'href="/organisers/audit"' not in viewer
    admin = text(sign_in_as("admin").get("/organisers/dashboard"))
    assert 'href="/organisers/audit"' in admin
    assert '<a href="/organisers/dashboard" aria-current="page">Dashboard</a>' in admin


def test_signed_out_visitors_are_sent_to_sign_in_and_pages_are_not_cached(app, db, sign_in_as):
    stranger = isolated_client(app)
    for path in ("/organisers/dashboard", "/organisers/subscribers", "/organisers/lists", "/organisers/lists/new"):
        response = stranger.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/organisers/login")
    assert sign_in_as("viewer").get("/organisers/subscribers").headers["Cache-Control"] == "no-store"


# Dashboard


def test_dashboard_counts_subscribers_per_list_and_status(db, sign_in_as):
    first = add_subscriber("ayse@example.org", lists=("newsletter", "london-protest-reminders"), **PAPER_FORM).id
    add_subscriber("bilal@example.org", lists=("newsletter",), **PAPER_FORM)
    add_subscriber("chen@example.org", lists=("newsletter",), **PAPER_FORM)
    subscriber_services.set_subscription(
        db.session.get(Subscriber, first), mailing_list("london-protest-reminders"), False, "test"
    )
    db.session.commit()
    page = text(sign_in_as("viewer").get("/organisers/dashboard"))
    counts = page.split('id="list-counts"', 1)[1].split("</table>", 1)[0]
    # Columns: pending, confirmed, unsubscribed.
    assert re.search(r"Newsletter</th>\s*<td[^>]*>0</td><td[^>]*>3</td><td[^>]*>0</td>", counts)
    assert re.search(r"London protest reminders</th>\s*<td[^>]*>0</td><td[^>]*>0</td><td[^>]*>1</td>", counts)
    assert "Recent activity" not in page  # the audit log is admin data


def test_dashboard_shows_recent_activity_to_admins_only(db, sign_in_as):
    add_subscriber("dilnur@example.org", **PAPER_FORM)
    page = text(sign_in_as("admin").get("/organisers/dashboard"))
    activity = page.split('id="recent-activity"', 1)[1].split("</table>", 1)[0]
    assert "subscriber.add" in activity and "login.succeeded" in activity
    assert activity.count("<tr>") <= 11  # heading row and at most ten events
    assert "dilnur@example.org" not in activity
    assert "recent-activity" not in text(sign_in_as("editor").get("/organisers/dashboard"))


def test_weekly_activity_groups_signups_and_unsubscribes_by_week_in_sql(db):
    now = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)  # a Wednesday
    this_monday = datetime(2026, 3, 9, tzinfo=UTC)
    newsletter = mailing_list("newsletter")
    moments = {
        "this-week@example.org": (this_monday, None),  # the very start of the current week
        "last-week@example.org": (this_monday - timedelta(seconds=1), this_monday + timedelta(days=1)),
        "eleven-weeks@example.org": (this_monday - timedelta(weeks=11), this_monday - timedelta(weeks=11)),
        "too-old@example.org": (this_monday - timedelta(weeks=11, seconds=1), this_monday - timedelta(weeks=12)),
        "future@example.org": (this_monday + timedelta(weeks=1), None),
    }
    for email, (created, ended) in moments.items():
        status = SubscriptionStatus.UNSUBSCRIBED if ended else SubscriptionStatus.CONFIRMED
        make_subscriber(email, lists=[newsletter], status=status, created_at=created, unsubscribed_at=ended)
    db.session.commit()
    weeks = subscriber_services.weekly_activity(12, now=now)
    assert [w.week_start.isoformat() for w in weeks][::11] == ["2025-12-22", "2026-03-09"]
    assert [w.signups for w in weeks] == [1] + [0] * 9 + [1, 1]
    assert [w.unsubscribes for w in weeks] == [1] + [0] * 10 + [1]


def test_dashboard_chart_is_our_own_accessible_svg_with_a_data_table(db, sign_in_as):
    add_subscriber("erkin@example.org", lists=("newsletter", "london-protest-reminders"), **PAPER_FORM)
    page = text(sign_in_as("viewer").get("/organisers/dashboard"))
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'role="img"' in svg and 'aria-labelledby="weekly-chart-title weekly-chart-desc"' in svg
    assert '<title id="weekly-chart-title">Signups and unsubscribes per week</title>' in svg
    assert "2 signups and 0 unsubscribes in all" in svg
    assert svg.count('<rect class="chart-signups"') == 12 + 1  # twelve bars and the legend
    assert re.search(r"<title>Week of \d+ \w+: 2 signups</title>", svg)
    assert "<script" not in page and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    table = page.split('id="weekly-table"', 1)[1].split("</table>", 1)[0]
    monday = utcnow().date() - timedelta(days=utcnow().weekday())
    assert re.search(rf"{monday.isoformat()}</th><td[^>]*>2</td><td[^>]*>0</td>", table)
    assert table.count('<th scope="row">') == 12


# Subscribers


def test_search_finds_by_address_or_name_and_filters_by_list_and_status(db, sign_in_as):
    add_subscriber("gulnar@example.org", "Gulnar Tursun", lists=("newsletter",), **PAPER_FORM)
    add_subscriber("hasan@example.net", "Hasan Ali", lists=("london-protest-reminders",), **PAPER_FORM)
    leaver = add_subscriber("ibrahim@example.org", "Ibrahim", lists=("newsletter",), **PAPER_FORM).id
    subscriber_services.set_subscription(db.session.get(Subscriber, leaver), mailing_list("newsletter"), False, "t")
    db.session.commit()
    viewer = sign_in_as("viewer")

    def found(**params) -> list[str]:
        response = viewer.get("/organisers/subscribers", query_string=params)
        assert response.status_code == 200
        return re.findall(r'<a href="/organisers/subscribers/\d+">([^<]+)</a>', text(response))

    assert found() == ["ibrahim@example.org", "hasan@example.net", "gulnar@example.org"]  # newest first
    assert found(q="tursun") == ["gulnar@example.org"]
    assert found(q="hasan@") == ["hasan@example.net"]
    assert found(q="example.net") == ["hasan@example.net"]
    assert found(list="newsletter") == ["ibrahim@example.org", "gulnar@example.org"]
    assert found(list="newsletter", status="confirmed") == ["gulnar@example.org"]
    assert found(status="unsubscribed") == ["ibrahim@example.org"]
    assert found(q="nobody-like-this") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "gone"}, "Choose a status from the menu."),
        ({"list": "no-such-list"}, "There is no such list"),
        ({"after": "12abc"}, "That page link is broken"),
        ({"after": "9" * 40}, "That page link is broken"),
    ],
)
def test_bad_search_filters_get_a_clear_400(db, sign_in_as, params, message):
    response = sign_in_as("viewer").get("/organisers/subscribers", query_string=params)
    assert response.status_code == 400
    assert message in text(response)


def test_subscribers_are_paged_by_keyset_with_a_next_page_link(db, sign_in_as):
    newsletter = mailing_list("newsletter")
    for n in range(60):
        make_subscriber(f"person{n:02}@example.org")
    db.session.commit()
    ids = fresh(db).scalars(sa.select(Subscriber.id).order_by(Subscriber.id.desc())).all()
    viewer = sign_in_as("viewer")
    first = text(viewer.get("/organisers/subscribers"))
    assert first.count('<a href="/organisers/subscribers/') == 50
    assert "person59@example.org" in first and "person09@example.org" not in first
    link = re.search(r'<a href="(/organisers/subscribers\?after=(\d+))" rel="next">Next page</a>', first)
    assert link and int(link.group(2)) == ids[49]
    second = text(viewer.get(link.group(1)))
    assert second.count('<a href="/organisers/subscribers/') == 10
    assert "person09@example.org" in second and "person10@example.org" not in second
    assert "Next page" not in second and "First page" in second
    # The filters travel with the link.
    filtered = text(viewer.get("/organisers/subscribers", query_string={"q": "person", "list": newsletter.slug}))
    assert "No subscribers match." in filtered


def test_subscriber_page_shows_subscriptions_and_consent_history(db, sign_in_as):
    subscriber_id = add_subscriber(
        "jamal@example.org", "Jamal", lists=("newsletter", "london-protest-reminders"), **PAPER_FORM
    ).id
    subscriber_services.set_subscription(
        db.session.get(Subscriber, subscriber_id), mailing_list("london-protest-reminders"), False, "test"
    )
    db.session.commit()
    page = text(sign_in_as("viewer").get(f"/organisers/subscribers/{subscriber_id}"))
    assert '<h1 dir="auto">Jamal</h1>' in page and "<dd>jamal@example.org</dd>" in page
    subscriptions = page.split('id="subscriptions"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"Newsletter</th>\s*<td>confirmed</td><td>organiser</td>", subscriptions)
    assert re.search(r"London protest reminders</th>\s*<td>unsubscribed</td><td>organiser</td>", subscriptions)
    today = utcnow().strftime("%Y-%m-%d")
    assert subscriptions.count(today) == 5  # two starts, two confirmations, one end
    consents = page.split('id="consents"', 1)[1].split("</table>", 1)[0]
    assert consents.count("Signed up at a stall, paper form kept") == 2
    assert consents.count("<td>import</td>") == 2
    # A viewer sees no controls.
    assert "Save name" not in page and "Unsubscribe from all lists" not in page and "Erase this subscriber" not in page


def test_editor_renames_subscribes_and_unsubscribes_as_an_organiser(db, sign_in_as):
    subscriber_id = add_subscriber("kamila@example.org", "Kamila", lists=("newsletter",), **PAPER_FORM).id
    protest = mailing_list("london-protest-reminders")
    editor = sign_in_as("editor")
    page = f"/organisers/subscribers/{subscriber_id}"
    assert "Erase this subscriber" not in text(editor.get(page))

    response = post_from(editor, page, f"{page}/name", name="  Kamila Ablet  ")
    assert response.status_code == 302 and response.headers["Location"] == page
    assert "The name is saved." in text(editor.get(page))
    assert fresh(db).get(Subscriber, subscriber_id).name == "Kamila Ablet"

    response = post_from(editor, page, f"{page}/subscriptions", list_id=str(protest.id), subscribed="1")
    assert response.status_code == 302
    assert statuses(db, subscriber_id)["london-protest-reminders"] == ("confirmed", "organiser")
    consent = fresh(db).scalar(
        sa.select(Consent).where(Consent.subscriber_id == subscriber_id, Consent.list_id == protest.id)
    )
    assert consent.basis == "organiser" and consent.confirmed_at is not None

    post_from(editor, page, f"{page}/subscriptions", list_id=str(protest.id), subscribed="0")
    assert statuses(db, subscriber_id) == {
        "newsletter": ("confirmed", "organiser"),
        "london-protest-reminders": ("unsubscribed", "organiser"),
    }

    response = post_from(editor, page, f"{page}/unsubscribe-all")
    assert response.status_code == 302
    assert "Unsubscribed from 1 list." in text(editor.get(page))
    assert statuses(db, subscriber_id) == {
        "newsletter": ("unsubscribed", "organiser"),
        "london-protest-reminders": ("unsubscribed", "organiser"),
    }
    actions = audit_actions(db)
    for action in ("subscriber.update", "subscription.subscribe", "subscription.unsubscribe"):
        assert action in actions
    last = fresh(db).scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (last.action, last.details) == ("subscription.unsubscribe", {"lists": ["newsletter"]})
    details = fresh(db).scalars(sa.select(AuditEvent.details)).all()
    assert "kamila@example.org" not in json.dumps(details)


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        ("name", {"name": "Line\nbreak"}, "The name can&#39;t contain line breaks"),
        ("name", {"name": "x" * 201}, "Please keep your name under 200 characters."),
        ("subscriptions", {"list_id": "999999", "subscribed": "1"}, "Choose a list"),
        ("subscriptions", {"list_id": "abc", "subscribed": "1"}, "Choose a list"),
        ("subscriptions", {"list_id": "LIST", "subscribed": "maybe"}, "Choose a list"),
        ("subscriptions", {"list_id": "ARCHIVED", "subscribed": "1"}, "is archived and takes no new subscribers"),
    ],
)
def test_bad_subscriber_changes_get_a_400_and_change_nothing(db, sign_in_as, action, data, message):
    subscriber_id = add_subscriber("lale@example.org", "Lale", lists=("newsletter",), **PAPER_FORM).id
    archived = mailing_list("london-protest-reminders")
    archived.archived = True
    db.session.commit()
    data = {
        key: {"LIST": str(archived.id), "ARCHIVED": str(archived.id)}.get(value, value) for key, value in data.items()
    }
    editor = sign_in_as("editor")
    before = statuses(db, subscriber_id), audit_actions(db)
    page = f"/organisers/subscribers/{subscriber_id}"
    response = post_from(editor, page, f"{page}/{action}", **data)
    assert response.status_code == 400
    assert message in text(response)
    assert fresh(db).get(Subscriber, subscriber_id).name == "Lale"
    assert (statuses(db, subscriber_id), audit_actions(db)) == before


def test_admin_erases_a_subscriber_only_after_confirming(db, sign_in_as):
    subscriber_id = add_subscriber("mahmut@example.org", "Mahmut", lists=("newsletter",), **PAPER_FORM).id
    admin = sign_in_as("admin")
    page = f"/organisers/subscribers/{subscriber_id}/erase"
    confirm = admin.get(page)
    assert confirm.status_code == 200 and "Erase mahmut@example.org?" in text(confirm)
    unconfirmed = post_from(admin, page, page)
    assert unconfirmed.status_code == 400 and "Tick the box to confirm" in text(unconfirmed)
    assert fresh(db).get(Subscriber, subscriber_id) is not None

    response = post_from(admin, page, page, confirm="y")
    assert response.status_code == 302 and response.headers["Location"] == "/organisers/subscribers"
    listing = text(admin.get("/organisers/subscribers"))
    assert "The subscriber is erased." in listing and "mahmut@example.org" not in listing
    session = fresh(db)
    assert session.get(Subscriber, subscriber_id) is None
    assert session.scalar(sa.select(sa.func.count()).select_from(Consent)) == 0
    assert session.scalar(
        sa.select(Suppression.reason).where(Suppression.address_hmac == address_hmac("mahmut@example.org"))
    )
    erased = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "subscriber.erase"))
    assert erased.actor == "admin@example.org" and erased.object_id == str(subscriber_id)
    assert admin.get(f"/organisers/subscribers/{subscriber_id}").status_code == 404


def test_admin_downloads_the_subject_access_export_and_it_is_audited(db, sign_in_as):
    subscriber_id = add_subscriber("nur@example.org", "Nur", lists=("newsletter",), **PAPER_FORM).id
    admin = sign_in_as("admin")
    assert f'href="/organisers/subscribers/{subscriber_id}/export.json"' in text(
        admin.get(f"/organisers/subscribers/{subscriber_id}")
    )
    response = admin.get(f"/organisers/subscribers/{subscriber_id}/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="subscriber-{subscriber_id}.json"'
    assert response.headers["Cache-Control"] == "no-store"
    export = json.loads(response.get_data())
    assert export["subscriber"]["email"] == "nur@example.org" and export["subscriber"]["name"] == "Nur"
    assert [(s["list"], s["status"]) for s in export["subscriptions"]] == [("newsletter", "confirmed")]
    assert export["consents"][0]["basis"] == "Signed up at a stall, paper form kept"
    event = fresh(db).scalar(sa.select(AuditEvent).where(AuditEvent.action == "subscriber.export"))
    assert event.actor == "admin@example.org" and event.object_id == str(subscriber_id)


def test_unknown_subscribers_and_lists_are_404(db, sign_in_as):
    admin = sign_in_as("admin")
    for path in (
        "/organisers/subscribers/424242",
        "/organisers/subscribers/99999999999999999999",
        "/organisers/subscribers/424242/export.json",
        "/organisers/subscribers/424242/erase",
        "/organisers/lists/424242/edit",
    ):
        assert admin.get(path).status_code == 404, path


# Lists


def test_lists_page_shows_counts_and_editors_create_and_edit_lists(db, sign_in_as):
    add_subscriber("omar@example.org", lists=("newsletter",), **PAPER_FORM)
    viewer_page = text(sign_in_as("viewer").get("/organisers/lists"))
    assert re.search(r"<code>newsletter</code></td>\s*<td>Yes</td>\s*<td[^>]*>0</td><td[^>]*>1</td>", viewer_page)
    assert "New list" not in viewer_page and "/edit" not in viewer_page

    editor = sign_in_as("editor")
    response = post_from(
        editor,
        "/organisers/lists/new",
        "/organisers/lists/new",
        slug="birmingham-events",
        name="Birmingham events",
        description="Talks and vigils in Birmingham.",
    )
    assert response.status_code == 302 and response.headers["Location"] == "/organisers/lists"
    assert "The list Birmingham events is created." in text(editor.get("/organisers/lists"))
    created = fresh(db).scalar(sa.select(MailingList).where(MailingList.slug == "birmingham-events"))
    assert (created.name, created.public, created.archived) == ("Birmingham events", False, False)

    edit = f"/organisers/lists/{created.id}/edit"
    form = text(editor.get(edit))
    assert 'value="Birmingham events"' in form and "Talks and vigils in Birmingham." in form
    response = post_from(editor, edit, edit, name="West Midlands events", description="Across the region.", public="y")
    assert response.status_code == 302
    edited = fresh(db).get(MailingList, created.id)
    assert (edited.slug, edited.name, edited.description, edited.public) == (
        "birmingham-events",
        "West Midlands events",
        "Across the region.",
        True,
    )
    assert audit_actions(db)[-2:] == ["list.create", "list.update"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"slug": "newsletter", "name": "Again"}, "A list called &#39;newsletter&#39; already exists."),
        ({"slug": "Bad Slug!", "name": "Bad"}, "The short name may use a-z, 0-9 and hyphens"),
        ({"slug": "no-name", "name": "  "}, "Give the list a name"),
        ({"slug": "long", "name": "Long", "description": "x" * 2001}, "Keep the description under 2,000 characters."),
    ],
)
def test_bad_list_input_gets_a_400_and_stores_nothing(db, sign_in_as, data, message):
    before = fresh(db).scalars(sa.select(MailingList.slug).order_by(MailingList.id)).all()
    response = post_from(sign_in_as("editor"), "/organisers/lists/new", "/organisers/lists/new", **data)
    assert response.status_code == 400
    assert message in text(response)
    assert fresh(db).scalars(sa.select(MailingList.slug).order_by(MailingList.id)).all() == before


def test_bad_list_edit_gets_a_400_and_changes_nothing(db, sign_in_as):
    newsletter = mailing_list("newsletter")
    edit = f"/organisers/lists/{newsletter.id}/edit"
    response = post_from(sign_in_as("editor"), edit, edit, name="", description="Changed", public="y")
    assert response.status_code == 400 and "Give the list a name" in text(response)
    unchanged = fresh(db).get(MailingList, newsletter.id)
    assert unchanged.name == "Newsletter" and unchanged.description != "Changed"


def test_archiving_a_list_takes_it_off_the_signup_form_but_keeps_every_subscription(app, db, sign_in_as):
    for n in range(3):
        add_subscriber(f"protester{n}@example.org", lists=("london-protest-reminders",), **PAPER_FORM)
    protest = mailing_list("london-protest-reminders")

    def rows():
        return sorted(
            (s.subscriber_id, s.status.value, s.status_reason.value, s.confirmed_at, s.unsubscribed_at)
            for s in fresh(db).scalars(sa.select(Subscription).where(Subscription.list_id == protest.id))
        )

    def signup_offers_protest() -> bool:
        return 'value="london-protest-reminders"' in text(isolated_client(app).get("/subscribe"))

    before = rows()
    assert len(before) == 3 and signup_offers_protest()
    editor = sign_in_as("editor")
    response = post_from(editor, "/organisers/lists", f"/organisers/lists/{protest.id}/archive")
    assert response.status_code == 302
    listing = text(editor.get("/organisers/lists"))
    assert "is archived. Its subscriptions are kept" in listing and "No (archived)" in listing
    assert fresh(db).get(MailingList, protest.id).archived is True
    assert not signup_offers_protest()
    assert rows() == before
    assert re.search(
        r'London protest reminders <span class="badge">archived</span></th>\s*<td[^>]*>0</td><td[^>]*>3</td>',
        text(editor.get("/organisers/dashboard")),
    )

    response = post_from(editor, "/organisers/lists", f"/organisers/lists/{protest.id}/unarchive")
    assert response.status_code == 302
    assert fresh(db).get(MailingList, protest.id).archived is False
    assert signup_offers_protest() and rows() == before


# Roles, enforced on the server


def _fixtures(db) -> dict[str, str]:
    subscriber_id = add_subscriber("pervin@example.org", "Pervin", lists=("newsletter",), **PAPER_FORM).id
    return {"S": str(subscriber_id), "L": str(mailing_list("newsletter").id)}


VIEWER_FORBIDDEN_POSTS = [
    ("/organisers/subscribers/S/name", {"name": "Changed"}),
    ("/organisers/subscribers/S/subscriptions", {"list_id": "L", "subscribed": "0"}),
    ("/organisers/subscribers/S/unsubscribe-all", {}),
    ("/organisers/subscribers/S/erase", {"confirm": "y"}),
    ("/organisers/lists/new", {"slug": "sneaky", "name": "Sneaky"}),
    ("/organisers/lists/L/edit", {"name": "Changed", "description": "Changed"}),
    ("/organisers/lists/L/archive", {}),
    ("/organisers/lists/L/unarchive", {}),
]
VIEWER_FORBIDDEN_PAGES = [
    "/organisers/lists/new",
    "/organisers/lists/L/edit",
    "/organisers/subscribers/S/erase",
    "/organisers/subscribers/S/export.json",
]


def _fill(path: str, ids: dict[str, str]) -> str:
    return "/".join(ids.get(part, part) for part in path.split("/"))


def _snapshot(db):
    session = fresh(db)
    return (
        session.scalars(sa.select(Subscriber.name)).all(),
        sorted((s.list_id, s.status.value) for s in session.scalars(sa.select(Subscription))),
        session.execute(
            sa.select(MailingList.slug, MailingList.name, MailingList.archived).order_by(MailingList.id)
        ).all(),
        session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action.not_like("login.%"))).all(),
    )


def test_a_viewer_gets_403_on_every_change_and_on_editor_and_admin_pages(db, sign_in_as):
    ids = _fixtures(db)
    viewer = sign_in_as("viewer")
    before = _snapshot(db)
    for path, data in VIEWER_FORBIDDEN_POSTS:
        data = {key: ids.get(value, value) for key, value in data.items()}
        response = post_from(viewer, "/organisers/dashboard", _fill(path, ids), **data)
        assert response.status_code == 403, path
    for path in VIEWER_FORBIDDEN_PAGES:
        assert viewer.get(_fill(path, ids)).status_code == 403, path
    assert _snapshot(db) == before


def test_an_editor_gets_403_on_erase_and_export(db, sign_in_as):
    ids = _fixtures(db)
    editor = sign_in_as("editor")
    before = _snapshot(db)
    assert editor.get(f"/organisers/subscribers/{ids['S']}/erase").status_code == 403
    assert (
        post_from(editor, "/organisers/dashboard", f"/organisers/subscribers/{ids['S']}/erase", confirm="y").status_code
        == 403
    )
    assert editor.get(f"/organisers/subscribers/{ids['S']}/export.json").status_code == 403
    assert _snapshot(db) == before


def test_posts_without_the_csrf_token_are_refused(db, sign_in_as):
    ids = _fixtures(db)
    editor = sign_in_as("editor")
    response = editor.post(f"/organisers/subscribers/{ids['S']}/name", data={"name": "Forged"})
    assert response.status_code == 400 and "This form expired" in text(response)
    assert fresh(db).get(Subscriber, int(ids["S"])).name == "Pervin"


# Escaping


def test_hostile_names_and_descriptions_are_escaped_on_every_page(db, sign_in_as):
    hostile_list = subscriber_services.mailing_list_by_slug("newsletter")
    hostile_list.name = f"News {BREAKOUT}"
    hostile_list.description = HOSTILE
    db.session.commit()
    subscriber_id = add_subscriber("quddus@example.org", HOSTILE, lists=("newsletter",), **PAPER_FORM).id
    subscriber_services.set_subscription(
        db.session.get(Subscriber, subscriber_id), mailing_list("london-protest-reminders"), True, "test"
    )
    db.session.commit()
    admin = sign_in_as("admin")
    admin.get(f"/organisers/subscribers/{subscriber_id}/export.json")  # the export is audited: one more event shown
    pages = [
        "/organisers/dashboard",
        "/organisers/subscribers",
        "/organisers/subscribers?q=quddus",
        f"/organisers/subscribers?q={SCRIPT}",
        f"/organisers/subscribers/{subscriber_id}",
        f"/organisers/subscribers/{subscriber_id}/erase",
        "/organisers/lists",
        f"/organisers/lists/{hostile_list.id}/edit",
    ]
    for path in pages:
        response = admin.get(path)
        assert response.status_code == 200, path
        page = text(response)
        assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page, path
    # And the escaped text is really there, where it should be.
    detail = text(admin.get(f"/organisers/subscribers/{subscriber_id}"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text(admin.get("/organisers/lists"))
    assert "News &#34;&gt;&lt;img" in text(admin.get("/organisers/dashboard"))
    # An error page that echoes the bad input escapes it too.
    page = f"/organisers/subscribers/{subscriber_id}"
    response = post_from(admin, page, f"{page}/name", name=SCRIPT + "x" * 200)
    assert response.status_code == 400 and "<script" not in text(response)
