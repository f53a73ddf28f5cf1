"""Upgrading a database of the previous release: the schema at 0012_bounces (the head before this round of
migrations), filled in bulk with rows of that schema (100,000 subscribers on PostgreSQL; 10,000 on the SQLite run),
then `flask db upgrade` to head, as an operator runs it. Nothing is lost: every table's rows, every column the old
schema had, are the same before and after (a checksum per table), also after `flask db downgrade 0012_bounces` and
a second upgrade; and the app works on the result (a signup through the service, a campaign's delivery snapshot and
its first batch's recipients)."""

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import pytest
import sqlalchemy as sa

from config import TestConfig
from tests.conftest import BACKEND, PG_ADMIN_URL, PROJECT_DIR, RUN_DIR, RUN_ID
from uscmail import create_app
from uscmail.campaigns import sending
from uscmail.campaigns import services as campaign_services
from uscmail.campaigns.models import Delivery
from uscmail.campaigns.outcomes import OutcomeKind
from uscmail.extensions import db
from uscmail.models import ConsentMethod, MailingList, Subscriber, Subscription, SubscriptionStatus
from uscmail.subscriptions import services as subscription_services
from uscmail.subscriptions.consent import CURRENT_VERSION, WORDINGS, wording_sha256
from uscmail.suppression import address_hmac

PREVIOUS_RELEASE = "0012_bounces"
SUBSCRIBERS = 100_000 if BACKEND == "postgres" else 10_000
SUPPRESSED = range(10, 60)  # subscribers whose addresses are also suppressed (a complaint, say)
START = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def flask_db(url: str, *arguments: str) -> str:
    """`flask --app uscmail db ...` on the database at `url`, as an operator runs it; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "uscmail", "db", *arguments],
        cwd=PROJECT_DIR, env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr + done.stdout


@pytest.fixture
def old_database():
    """The URL of a new, empty database (dropped afterwards)."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{RUN_DIR / f'upgrade-{uuid.uuid4().hex[:6]}.sqlite'}"
        return
    name = f"uscmail_test_{RUN_ID}_upgrade"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def revision(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return connection.scalar(sa.text("SELECT version_num FROM alembic_version"))


# --- rows of the 0012 schema --------------------------------------------------------------------------------------


def old_release_rows(hmac_of) -> dict[str, list[dict]]:
    """A year of the previous release, as its tables hold it: subscribers on two lists (confirmed, pending,
    unsubscribed) with a consent per subscription, suppressions, organisers, the audit log, a sent campaign with a
    delivery per recipient, a protest with a reminder, bounces. In insertion order (parents first)."""
    at = [START + timedelta(minutes=i) for i in range(SUBSCRIBERS + 1)]
    wording = WORDINGS[CURRENT_VERSION]
    tables: dict[str, list[dict]] = {
        "consent_wordings": [{"version": CURRENT_VERSION, "text": wording, "sha256": wording_sha256(wording),
                              "created_at": START}],
        "mailing_lists": [
            {"id": 1, "slug": "newsletter", "name": "Newsletter", "description": "News", "public": True,
             "archived": False, "created_at": START},
            {"id": 2, "slug": "london-protest-reminders", "name": "London protest reminders", "description": "5th",
             "public": True, "archived": False, "created_at": START},
        ],
        "organisers": [{"id": 1, "email": "admin@example.org", "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$x",
                        "role": "admin", "active": True, "totp_last_step": None, "security_version": 1,
                        "created_at": START, "last_login_at": START, "totp_secret_encrypted": "gAAAA-old",
                        "enrolment_nonce_sha256": None}],
    }  # fmt: skip
    subscribers, subscriptions, consents = [], [], []
    for i in range(1, SUBSCRIBERS + 1):
        subscribers.append({
            "id": i, "public_id": f"{i:08d}{uuid.UUID(int=i).hex[:16]}", "email": f"supporter{i:06d}@example.org",
            "name": None if i % 7 == 0 else ("ئىلھام" if i % 11 == 0 else f"Supporter {i}"), "locale": "en",
            "confirm_nonce": None, "created_at": at[i], "updated_at": at[i], "signup_mail_window_start": None,
            "signup_mail_count": 1,
        })  # fmt: skip
        on_lists = [(1, ("pending", "confirmed", *["confirmed"] * 8, "unsubscribed")[i % 11])]
        if i % 3 == 0:
            on_lists.append((2, "confirmed"))
        for list_id, status in on_lists:
            number = len(subscriptions) + 1
            subscriptions.append({
                "id": number, "subscriber_id": i, "list_id": list_id, "status": status,
                "status_reason": {"pending": "signup_form", "confirmed": "confirmed_by_subscriber",
                                  "unsubscribed": "unsubscribe_link"}[status],
                "created_at": at[i], "confirmed_at": None if status == "pending" else at[i] + timedelta(hours=1),
                "unsubscribed_at": at[i] + timedelta(days=30) if status == "unsubscribed" else None,
                "updated_at": at[i],
            })  # fmt: skip
            consents.append({
                "id": number, "subscriber_id": i, "list_id": list_id, "method": "form" if i % 2 else "import",
                "wording_version": CURRENT_VERSION, "wording_sha256": wording_sha256(wording),
                "basis": None if i % 2 else "Sign-up sheet, Portland Place", "created_at": at[i],
                "confirmed_at": None if status == "pending" else at[i] + timedelta(hours=1),
                "withdrawn_at": at[i] + timedelta(days=30) if status == "unsubscribed" else None,
            })  # fmt: skip
    tables["subscribers"], tables["subscriptions"], tables["consents"] = subscribers, subscriptions, consents
    tables["suppressions"] = [
        {"id": n, "address_hmac": hmac_of(f"supporter{i:06d}@example.org"), "reason": "complaint", "created_at": START}
        for n, i in enumerate(SUPPRESSED, 1)
    ] + [{"id": 100 + n, "address_hmac": hashlib.sha256(b"erased %d" % n).hexdigest(), "reason": "erased",
          "created_at": START} for n in range(50)]  # fmt: skip
    tables["campaigns"] = [{
        "id": 1, "public_id": "c" * 20, "kind": "newsletter", "subject": "Solidarity news — June",
        "preheader": "Portland Place on the 5th", "body_format": "markdown",
        "body": "Dear {{ subscriber.name }},\n\nJoin us.", "from_name": "USC-UK", "from_email": "news@uscuk.test",
        "reply_to": None, "status": "sent", "status_detail": None,
        "public": True, "scheduled_at": None, "started_at": START, "finished_at": START + timedelta(hours=1),
        "snapshot_done": True, "sent_count": None, "failed_count": None, "connection_failures": 0, "created_by_id": 1,
        "created_at": START, "updated_at": START, "calendar": None,
    }]  # fmt: skip
    tables["campaign_lists"] = [{"campaign_id": 1, "list_id": 1}]
    recipients = [s["subscriber_id"] for s in subscriptions if s["list_id"] == 1 and s["status"] == "confirmed"]
    tables["deliveries"] = [
        {"id": n, "campaign_id": 1, "subscriber_id": subscriber_id, "status": "failed" if n % 500 == 0 else "sent",
         "attempts": 1, "next_attempt_at": None, "claim": None, "lease_until": None,
         "error": "550 5.1.1 mailbox unknown" if n % 500 == 0 else None,
         "sent_at": None if n % 500 == 0 else START + timedelta(seconds=n / 100)}
        for n, subscriber_id in enumerate(recipients, 1)
    ]  # fmt: skip
    tables["bounce_events"] = [
        {"id": n, "subscriber_id": d["subscriber_id"], "campaign_id": 1, "kind": "hard", "source": "smtp",
         "status": "5.1.1", "diagnostic": "mailbox unknown", "decision": "unsubscribed", "score": None,
         "created_at": START + timedelta(hours=2)}
        for n, d in enumerate((d for d in tables["deliveries"] if d["status"] == "failed"), 1)
    ]  # fmt: skip
    tables["events"] = [{
        "id": 1, "public_id": "e" * 20, "title": "Monthly protest at the Chinese Embassy",
        "rrule": "FREQ=MONTHLY;BYMONTHDAY=5", "first_date": date(2025, 1, 5), "start_time": clock(14, 0),
        "duration_minutes": 120, "timezone": "Europe/London", "map_url": None, "list_id": 2,
        "place": "Chinese Embassy, 49–51 Portland Place, London W1B 1JL", "reminder_offsets": ["P7D", "P1D"],
        "subject_template": "Protest on {{ date }}", "body_template": "See you there.",
        "on_hold": False, "hold_reason": None, "active_since": START, "created_at": START, "updated_at": START,
        "last_error": None, "last_error_at": None,
    }]  # fmt: skip
    tables["reminders"] = [
        {
            "id": 1,
            "event_id": 1,
            "occurrence_date": date(2025, 6, 5),
            "offset_key": "P1D",
            "due_at": START,
            "status": "sent",
            "campaign_id": 1,
            "created_at": START,
            "detail": None,
        }
    ]
    tables["audit_events"] = [
        {"id": n, "created_at": START + timedelta(minutes=n), "organiser_id": 1, "actor": "admin@example.org",
         "action": "subscriber.update" if n % 2 else "campaign.send", "object_type": "subscriber",
         "object_id": str(n), "details": {"fields": ["name"], "n": n}}
        for n in range(1, 501)
    ]  # fmt: skip
    return tables


def fill(engine: sa.Engine, tables: dict[str, list[dict]]) -> None:
    """Insert every row: COPY on PostgreSQL (then each id sequence moved past the ids used, as the app's own inserts
    would have left it), executemany on SQLite."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        for name, rows in tables.items():
            columns = list(rows[0])
            if engine.dialect.name != "postgresql":
                connection.execute(metadata.tables[name].insert(), rows)
                continue
            cursor = connection.connection.cursor()
            with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()])
            if "id" in columns:
                # Table names of our own, from the dictionary above.
                move = f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) FROM {name}"  # noqa: S608
                connection.execute(sa.text(move))


def checksums(engine: sa.Engine, columns: dict[str, list[str]], keys: dict[str, list[str]]) -> dict[str, tuple]:
    """Per table: (row count, a digest of every row's values in the given columns, in primary-key order). PostgreSQL
    computes it itself (md5 of each row's text form); on SQLite, SHA-256 here."""
    result = {}
    with engine.connect() as connection:
        quote = connection.dialect.identifier_preparer.quote
        for name, names in columns.items():
            if engine.dialect.name == "postgresql":
                values = ", ".join(quote(c) for c in names)
                order = ", ".join(quote(k) for k in keys[name])
                # Names from the schema itself, quoted as identifiers.
                aggregate = f"md5(string_agg(ROW({values})::text, ',' ORDER BY {order}))"
                digest = f"SELECT count(*), {aggregate} FROM {quote(name)}"  # noqa: S608
                result[name] = tuple(connection.execute(sa.text(digest)).one())
                continue
            table = sa.table(name, *(sa.column(c) for c in names))
            query = sa.select(*table.columns).order_by(*(table.c[k] for k in keys[name]))
            digest, count = hashlib.sha256(), 0
            for row in connection.execute(query):
                digest.update(repr(tuple(row)).encode())
                count += 1
            result[name] = (count, digest.hexdigest())
    return result


def test_upgrading_a_full_database_of_the_previous_release_loses_nothing(app, old_database):
    started = time.monotonic()
    flask_db(old_database, "upgrade", PREVIOUS_RELEASE)
    engine = sa.create_engine(old_database, poolclass=sa.pool.NullPool)
    assert revision(engine) == PREVIOUS_RELEASE
    with app.app_context():
        tables = old_release_rows(address_hmac)
    fill(engine, tables)
    filled_in = time.monotonic() - started

    inspector = sa.inspect(engine)
    old_tables = [name for name in inspector.get_table_names() if name != "alembic_version"]
    columns = {name: [c["name"] for c in inspector.get_columns(name)] for name in old_tables}
    keys = {name: inspector.get_pk_constraint(name)["constrained_columns"] for name in old_tables}
    before = checksums(engine, columns, keys)
    assert before["subscribers"][0] == SUBSCRIBERS and before["consents"][0] == len(tables["consents"])
    assert before["deliveries"][0] == len(tables["deliveries"]) > SUBSCRIBERS * 0.7

    flask_db(old_database, "upgrade")
    head = revision(engine)
    assert head != PREVIOUS_RELEASE
    assert checksums(engine, columns, keys) == before

    flask_db(old_database, "downgrade", PREVIOUS_RELEASE)
    assert revision(engine) == PREVIOUS_RELEASE
    assert checksums(engine, columns, keys) == before
    flask_db(old_database, "upgrade")
    assert revision(engine) == head
    assert checksums(engine, columns, keys) == before
    engine.dispose()

    check_the_app_works_on(old_database, len(tables["deliveries"]))
    app.extensions["celery"].set_default()  # the session's app, for the tests that follow
    elapsed = time.monotonic() - started
    assert elapsed < 240, f"the upgrade test took {elapsed:.0f}s (filling: {filled_in:.0f}s)"


def check_the_app_works_on(url: str, old_deliveries: int) -> None:
    """A signup and a confirmation through the services, then a new campaign to the newsletter: its delivery
    snapshot covers every confirmed subscriber, and the first batch's recipients leave out the suppressed ones."""
    config = TestConfig()
    config.SQLALCHEMY_DATABASE_URI = url
    upgraded = create_app(config)
    with upgraded.app_context():
        newsletter = db.session.get(MailingList, 1)
        result = subscription_services.request_subscription(
            "new.supporter@example.org", "New", [newsletter], ConsentMethod.FORM, CURRENT_VERSION
        )
        subscriber = db.session.get(Subscriber, result.subscriber_id)
        assert subscriber.id == SUBSCRIBERS + 1
        subscription_services.confirm_subscription(subscriber)
        db.session.commit()

        fields = campaign_services.CampaignFields(
            subject="After the upgrade", body="Hello {{ subscriber.name }}", list_ids=[1]
        )
        campaign = campaign_services.create_campaign(fields, "test")
        db.session.commit()
        after = 0
        while (after := sending.snapshot_chunk(campaign, after, sending.SNAPSHOT_CHUNK)) is not None:
            db.session.commit()
        confirmed = db.session.scalar(
            sa.select(sa.func.count()).where(
                Subscription.list_id == 1, Subscription.status == SubscriptionStatus.CONFIRMED
            )
        )
        assert confirmed == old_deliveries + 1
        count = sa.select(sa.func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign.id)
        assert db.session.scalar(count) == confirmed

        batch = sending.claim_batch(campaign.id, 500)
        recipients, skipped = sending.recipients_of(batch, campaign)
        suppressed = {f"supporter{i:06d}@example.org" for i in SUPPRESSED}
        assert len(recipients) + len(skipped) == 500
        assert [o.kind for o in skipped] == [OutcomeKind.SKIPPED] * len(skipped)
        assert 0 < len(skipped) == len(suppressed & {f"supporter{i:06d}@example.org" for i in range(1, 600)} - {
            f"supporter{i:06d}@example.org" for i in range(1, 600) if i % 11 in (0, 10)
        })  # fmt: skip
        assert not suppressed & {r.email for r in recipients}
        db.session.remove()
        db.engine.dispose()
