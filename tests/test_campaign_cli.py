"""`flask campaigns list | send ID | status ID [--watch]`: confirmation, refusals, progress figures."""

from datetime import timedelta

import sqlalchemy as sa

from tests.api_support import audit_actions
from tests.campaign_support import VIGIL_BODY, VIGIL_SUBJECT, start_without_worker, status_of, wait_for_status
from tests.factories import add_subscriber, make_campaign
from uscmail.campaigns import services
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from uscmail.models import utcnow


def campaigns(app, *args: str, answer: str | None = None):
    """Run `flask campaigns ARGS`, typing `answer` at any prompt."""
    return app.test_cli_runner().invoke(args=["campaigns", *args], input=answer)


def deliveries(db) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Delivery))


def test_send_asks_first_then_sends_and_status_follows_it_to_the_end(app, db, worker, smtp_sink):
    for email in ("amina@example.org", "bilal@example.org"):
        add_subscriber(email)
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id

    result = campaigns(app, "send", str(campaign_id), answer="y\n")
    assert result.exit_code == 0, result.output
    assert "Send 'December vigil' to 2 people? [y/N]" in result.output
    assert (
        f"sending 'December vigil' to 2 people; follow it with: flask --app uscmail campaigns status {campaign_id}"
        in (result.output)
    )
    watched = campaigns(app, "status", str(campaign_id), "--watch")
    assert watched.exit_code == 0, watched.output
    # --watch returns only once the campaign has finished: its last report is the final one.
    last = watched.output.strip().split("\n\n")[-1]
    assert last.splitlines() == [
        f"campaign {campaign_id} 'December vigil': sent",
        "  sent 2, failed 0, pending 0, skipped 0, unknown 0 — 2 of 2 done (100%)",
    ]
    assert status_of(campaign_id) is CampaignStatus.SENT
    for email in ("amina@example.org", "bilal@example.org"):
        [mail] = smtp_sink.wait_for(email)
        assert mail.message["Subject"] == "December vigil"
    [(action, actor, object_id, _)] = audit_actions(db, "campaign.send")
    assert (action, actor, object_id) == ("campaign.send", "cli", str(campaign_id))

    once = campaigns(app, "status", str(campaign_id))
    assert once.exit_code == 0 and once.output.splitlines()[0] == f"campaign {campaign_id} 'December vigil': sent"


def test_send_yes_skips_the_question(app, db, worker, smtp_sink):
    add_subscriber("chen@example.org")
    campaign_id = make_campaign("Vigil on the 5th", VIGIL_BODY).id
    result = campaigns(app, "send", str(campaign_id), "--yes")
    assert result.exit_code == 0, result.output
    assert "?" not in result.output and "sending 'Vigil on the 5th' to 1 person;" in result.output
    [mail] = smtp_sink.wait_for("chen@example.org")
    assert mail.message["Subject"] == "Vigil on the 5th"
    wait_for_status(campaign_id, CampaignStatus.SENT)


def test_declining_the_question_sends_nothing(app, db):
    add_subscriber("dilnur@example.org")
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    for answer in ("n\n", "\n"):  # the default is no
        result = campaigns(app, "send", str(campaign_id), answer=answer)
        assert result.exit_code != 0
        assert "Send 'December vigil' to 1 person? [y/N]" in result.output and "Aborted" in result.output
        assert status_of(campaign_id) is CampaignStatus.DRAFT
        assert deliveries(db) == 0 and audit_actions(db, "campaign.send") == []


def test_wrong_ids_and_states_get_a_clear_error_and_no_traceback(app, db):
    add_subscriber("erkin@example.org")
    nobody = make_campaign("To the reminder list", VIGIL_BODY, lists=("london-protest-reminders",)).id
    cancelled = make_campaign("Called off", VIGIL_BODY).id
    start_without_worker(db, cancelled)
    services.cancel(db.session.get(Campaign, cancelled), "test")
    db.session.commit()

    for args, message in [
        (["send", "424242", "--yes"], "Error: there is no campaign with the id 424242"),
        (["status", "424242"], "Error: there is no campaign with the id 424242"),
        (["send", str(cancelled)], "Error: This campaign is cancelled; it can't be sent again."),
        (["send", str(nobody)], "Error: Nobody is confirmed on the chosen lists, so there is no one to send to."),
    ]:
        result = campaigns(app, *args, answer="y\n")
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
        assert "?" not in result.output  # refused before asking
    not_a_number = campaigns(app, "send", "seven")
    assert not_a_number.exit_code == 2 and "'seven' is not a valid integer" in not_a_number.output
    assert status_of(nobody) is CampaignStatus.DRAFT and status_of(cancelled) is CampaignStatus.CANCELLED


def test_status_shows_counts_rate_and_time_remaining_while_sending(app, db):
    add_subscriber("fatima@example.org")
    campaign_id = make_campaign(VIGIL_SUBJECT, VIGIL_BODY).id
    # The campaign is marked sending, with no task queued: the deliveries below are the whole picture.
    start_without_worker(db, campaign_id)
    now = utcnow()
    # It began a quarter of an hour ago (the rate counts what was sent since the start, up to 30 seconds back).
    db.session.execute(
        sa.update(Campaign).where(Campaign.id == campaign_id).values(started_at=now - timedelta(minutes=15))
    )
    rows = [{"status": DeliveryStatus.SENT, "sent_at": now - timedelta(seconds=5)}] * 60
    rows += [{"status": DeliveryStatus.SENT, "sent_at": now - timedelta(minutes=10)}] * 20
    for status, count in [("failed", 5), ("skipped", 3), ("unknown", 2), ("pending", 450)]:
        rows += [{"status": DeliveryStatus(status), "sent_at": None}] * count
    db.session.execute(sa.insert(Delivery), [{"campaign_id": campaign_id, **row} for row in rows])
    db.session.commit()

    result = campaigns(app, "status", str(campaign_id))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"campaign {campaign_id} 'December vigil': sending",
        "  sent 80, failed 5, pending 450, skipped 3, unknown 2 — 90 of 540 done (16%)",
        "  2 per second, time remaining 3 min 45 s",
    ]

    services.pause(db.session.get(Campaign, campaign_id), "test", "The mail server refused the connection")
    db.session.commit()
    # Paused waits for an organiser: --watch reports once and returns rather than waiting forever.
    paused = campaigns(app, "status", str(campaign_id), "--watch")
    assert paused.exit_code == 0
    assert paused.output.splitlines()[:2] == [
        f"campaign {campaign_id} 'December vigil': paused",
        "  The mail server refused the connection",
    ]
    assert "per second" not in paused.output


def test_list_shows_the_newest_campaigns_first(app, db):
    first = make_campaign("November newsletter", VIGIL_BODY).id
    second = make_campaign("December vigil", VIGIL_BODY).id
    services.schedule(db.session.get(Campaign, second), utcnow() + timedelta(days=2), "test")
    db.session.commit()
    result = campaigns(app, "list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{second:>6}  scheduled  December vigil",
        f"{first:>6}  draft      November newsletter",
    ]
    assert campaigns(app, "list", "--limit", "1").output.splitlines() == [f"{second:>6}  scheduled  December vigil"]
