"""The pages a campaign brings by the hundred a second (the signup form, one-click unsubscribes, the preference page)
spend no round trips on BEGIN and COMMIT on PostgreSQL: each of their statements stands alone, in a transaction of
its own. On SQLite they run as every other page does."""

import sqlalchemy as sa

from tests.conftest import BACKEND, form_fields, isolated_client, recorded_statements, wait_for_signups
from tests.factories import sign_up_subscriber
from tests.signup_support import WORDING_VERSION
from uscmail.models import Subscriber, SubscriptionStatus
from uscmail.subscriptions import mails

BASE_URL = "https://lists.uscuk.test"
EXPECTED = "AUTOCOMMIT" if BACKEND == "postgres" else None


def isolation_level(connection, statement) -> str | None:
    """The isolation level a statement runs under (None: the engine's own, in a transaction)."""
    return connection.get_execution_options().get("isolation_level")


def test_the_busiest_pages_statements_stand_alone(app, db, celery_worker):
    subscriber = sign_up_subscriber("busy.pages@example.org", lists=["newsletter", "london-protest-reminders"])
    [newsletter] = [s.list_id for s in subscriber.subscriptions if s.mailing_list.slug == "newsletter"]
    one_click = mails.unsubscribe_url(subscriber, [newsletter]).removeprefix(BASE_URL)
    preferences = mails.preferences_url(subscriber).removeprefix(BASE_URL)
    db.session.rollback()
    browser = isolated_client(app, {"REMOTE_ADDR": "192.0.2.91"})
    with recorded_statements(db.engine, read=isolation_level) as seen:
        form = browser.get("/subscribe")
        counts = [len(seen)]
        data = {**form_fields(form.get_data(as_text=True)), "consent_version": WORDING_VERSION}
        data.update(email="busy.newcomer@example.org", name="", lists=["newsletter"], website="")
        stored = browser.post("/subscribe", data=data)
        counts.append(len(seen))
        left = browser.post(
            one_click, data=b"List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
        counts.append(len(seen))
        page = browser.get(preferences)
        counts.append(len(seen))

    assert [form.status_code, stored.status_code, left.status_code, page.status_code] == [200, 303, 200, 200]
    assert stored.headers["Location"] == "/subscribe/thanks"
    # Each page ran at least one statement (the form 1, the signup 2, one-click 1 on PostgreSQL, the page 1).
    assert all(after > before for before, after in zip([0, *counts[:-1]], counts, strict=True)), counts
    assert seen == [EXPECTED] * len(seen)
    wait_for_signups(db)
    db.session.rollback()
    assert db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == "busy.newcomer@example.org"))
    statuses = {s.mailing_list.slug: s.status for s in db.session.get(Subscriber, subscriber.id).subscriptions}
    assert statuses == {
        "newsletter": SubscriptionStatus.UNSUBSCRIBED,
        "london-protest-reminders": SubscriptionStatus.CONFIRMED,
    }
