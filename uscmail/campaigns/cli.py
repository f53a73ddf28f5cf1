"""`flask --app uscmail campaigns list | send ID | status ID [--watch]`."""

import time

import click
from flask import Flask

from ..extensions import db
from ..queueing import after_commit
from ..validation import InvalidInput
from . import services, tasks
from .models import Campaign, CampaignStatus

ACTOR = "cli"
WATCH_INTERVAL_SECONDS = 2.0
# Watching stops when the campaign waits for an organiser (draft, paused) or has ended (sent, cancelled).
WATCHED_STATUSES = {CampaignStatus.SCHEDULED, CampaignStatus.SENDING}


def _campaign_or_fail(campaign_id: int) -> Campaign:
    campaign = services.get_campaign(campaign_id)
    if campaign is None:
        raise click.ClickException(f"there is no campaign with the id {campaign_id}")
    return campaign


def people(count: int) -> str:
    """'1 person', '1,204 people'."""
    return "1 person" if count == 1 else f"{count:,} people"


def duration(seconds: int | None) -> str:
    """A time remaining in words an organiser reads at a glance: '45 s', '3 min 20 s', '2 h 05 min'."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def status_report(campaign: Campaign, stats: services.CampaignStats) -> str:
    """The lines `campaigns status` prints: status, counts by delivery status, rate and time remaining."""
    lines = [f"campaign {campaign.id} {campaign.subject!r}: {stats.status}"]
    if stats.status_detail:
        lines.append(f"  {stats.status_detail}")
    if campaign.status is CampaignStatus.SCHEDULED and campaign.scheduled_at:
        lines.append(f"  scheduled for {campaign.scheduled_at.isoformat(timespec='minutes')}")
    lines.append(
        f"  sent {stats.sent:,}, failed {stats.failed:,}, pending {stats.pending:,}, skipped {stats.skipped:,}, "
        f"unknown {stats.unknown:,} — {stats.done:,} of {stats.recipients:,} done ({stats.percent}%)"
    )
    if campaign.status is CampaignStatus.SENDING:
        lines.append(f"  {stats.rate_per_second:g} per second, time remaining {duration(stats.seconds_remaining)}")
    return "\n".join(lines)


def init_campaigns_cli(app: Flask) -> None:
    """Register the `campaigns` command group."""
    group = click.Group("campaigns", help="List, send and follow campaigns.")

    @group.command("list")
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
    def list_command(limit: int) -> None:
        """The most recent campaigns: id, status, subject."""
        for campaign in services.campaigns_page(limit=limit):
            click.echo(f"{campaign.id:>6}  {campaign.status.value:<9}  {campaign.subject}")

    @group.command("send")
    @click.argument("campaign_id", type=int)
    @click.option("--yes", is_flag=True, help="Send without asking for confirmation.")
    def send_command(campaign_id: int, yes: bool) -> None:
        """Start sending a draft or scheduled campaign now, to everyone confirmed on its lists."""
        campaign = _campaign_or_fail(campaign_id)
        count = services.recipient_count(campaign.list_ids)
        # No question when the answer could only be refused (wrong status, nobody to send to): the refusal comes first.
        if not yes and campaign.editable and count:
            question = f"Send {campaign.subject!r} to {people(count)}?"
            # No transaction stays open while the organiser reads the question.
            db.session.rollback()
            click.confirm(question, abort=True)
        try:
            services.start_sending(campaign, ACTOR)
        except InvalidInput as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from None
        after_commit(tasks.start_campaign, campaign_id)
        db.session.commit()
        click.echo(
            f"sending {campaign.subject!r} to {people(count)}; "
            f"follow it with: flask --app uscmail campaigns status {campaign_id} --watch"
        )

    @group.command("status")
    @click.argument("campaign_id", type=int)
    @click.option("--watch", is_flag=True, help="Refresh every 2 seconds until sending has finished or stopped.")
    def status_command(campaign_id: int, watch: bool) -> None:
        """Where a campaign stands: status, deliveries by status, send rate, time remaining."""
        campaign = _campaign_or_fail(campaign_id)
        while True:
            click.echo(status_report(campaign, services.campaign_stats(campaign)))
            if not watch or campaign.status not in WATCHED_STATUSES:
                return
            # End the transaction, so the next look sees what the workers have committed meanwhile.
            db.session.rollback()
            time.sleep(WATCH_INTERVAL_SECONDS)
            campaign = _campaign_or_fail(campaign_id)
            click.echo()

    app.cli.add_command(group)
