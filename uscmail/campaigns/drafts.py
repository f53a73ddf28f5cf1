"""Drafts: saving as the organiser types (autosave), duplicating a campaign, deleting a draft. Like the other campaign
services they flush; the caller commits."""

from dataclasses import dataclass

from ..extensions import db
from ..organisers import audit
from ..organisers.models import Organiser
from . import services
from .models import Campaign, CampaignKind, CampaignStatus, CampaignTranslation
from .revisions import london_clock
from .services import CampaignFields, TransitionRefused


@dataclass
class Autosaved:
    """What the compose page needs after an autosave: the campaign, its new revision, and when (London time)."""

    campaign: Campaign
    revision: int
    saved_at: str


def autosave(
    campaign: Campaign | None, fields: CampaignFields, actor: Organiser | str, revision: int | None
) -> Autosaved:
    """Save what the compose form holds: a new draft the first time, then changes to it while it is a draft.

    A campaign that is not a draft is never autosaved (a scheduled one changes only when the organiser presses Save);
    a change based on an older revision raises services.EditConflict. Invalid content raises InvalidInput and stores
    nothing."""
    if campaign is None:
        campaign = services.create_campaign(fields, actor)
    elif not campaign.editable:
        raise TransitionRefused(f"This campaign is {campaign.status.value}; it can no longer be changed.")
    elif campaign.status is not CampaignStatus.DRAFT:
        raise TransitionRefused(
            f"This campaign is {campaign.status.value}, so it is not saved automatically: press “Save changes”."
        )
    else:
        services.update_campaign(campaign, fields, actor, revision, autosave=True)
    return Autosaved(campaign, campaign.revision, london_clock(campaign.updated_at))


def duplicate_campaign(original: Campaign, actor: Organiser | str) -> Campaign:
    """A new draft newsletter with the original's subject, preheader, body, language and translations, lists, sender,
    reply-to and archive choice (not its schedule, progress or calendar), whatever the original's status. Copied as
    stored, so a sender or list that is no longer allowed is explained when the copy is saved."""
    copy = Campaign(
        kind=CampaignKind.NEWSLETTER,
        subject=original.subject,
        preheader=original.preheader,
        body_format=original.body_format,
        body=original.body,
        from_name=original.from_name,
        from_email=original.from_email,
        reply_to=original.reply_to,
        public=original.public,
        locale=original.locale,
        created_by_id=actor.id if isinstance(actor, Organiser) else None,
    )
    copy.lists = list(original.lists)
    copy.translations = [
        CampaignTranslation(locale=found.locale, subject=found.subject, preheader=found.preheader, body=found.body)
        for found in original.translations
    ]
    db.session.add(copy)
    db.session.flush()
    audit.record(actor, "campaign.duplicate", "campaign", copy.id, original=original.id)
    return copy


def delete_draft(campaign: Campaign, actor: Organiser | str) -> None:
    """Delete a campaign that was never sent (a draft, or a scheduled one)."""
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise TransitionRefused("Only drafts can be deleted; a sent campaign stays in the history.")
    audit.record(actor, "campaign.delete", "campaign", campaign.id)
    db.session.delete(campaign)
    db.session.flush()
