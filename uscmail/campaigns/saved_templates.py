"""Saved templates: starting points for campaigns (a name, and the subject, preheader, body format and body a new
campaign begins with) that editors keep, change and delete. A template's body is held to the campaign rules (the
sandbox, personal links, image hosts) when it is saved, so a campaign started from it can be saved as it is.
Like the other services these flush; the caller commits."""

from dataclasses import dataclass

import sqlalchemy as sa

from ..extensions import db
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, single_line_text, unsendable
from . import render
from .models import BodyFormat, Campaign, SavedTemplate
from .services import BODY_MAX_LENGTH, PREHEADER_MAX_LENGTH, SUBJECT_MAX_LENGTH

NAME_MAX_LENGTH = 120


@dataclass
class TemplateFields:
    """What an editor writes into a template; checked by `clean_template_fields`."""

    name: str
    body: str
    body_format: BodyFormat | str = BodyFormat.MARKDOWN
    subject: str = ""
    preheader: str = ""


def clean_template_fields(fields: TemplateFields, template: SavedTemplate | None = None) -> dict:
    """Checked and normalised column values, or InvalidInput saying what to change. The subject may be left empty
    (each campaign gives its own); the body must pass the same checks as a campaign's."""
    name = single_line_text(
        fields.name, "name", NAME_MAX_LENGTH, required=True, missing="Please give the template a name."
    )
    subject = single_line_text(fields.subject, "subject", SUBJECT_MAX_LENGTH, required=False)
    preheader = single_line_text(fields.preheader, "preheader", PREHEADER_MAX_LENGTH, required=False)
    try:
        body_format = BodyFormat(fields.body_format)
    except ValueError:
        raise InvalidInput("The body format must be markdown or html.") from None
    body = fields.body or ""
    if not body.strip():
        raise InvalidInput("Please write the starting body of the template.")
    if unsendable(body):
        raise InvalidInput("The body contains characters that can't be sent (NUL or a broken character).")
    if len(body) > BODY_MAX_LENGTH:
        raise InvalidInput(f"The body is too long (at most {BODY_MAX_LENGTH:,} characters).")
    if subject:
        render.check_subject(subject)
    render.check_template(body, body_format)
    taken = sa.select(SavedTemplate.id).where(sa.func.lower(SavedTemplate.name) == name.lower())
    if template is not None:
        taken = taken.where(SavedTemplate.id != template.id)
    if db.session.scalar(taken) is not None:
        raise InvalidInput(f"There is already a template called “{name}”; choose another name.")
    return {"name": name, "subject": subject, "preheader": preheader, "body_format": body_format, "body": body}


def all_templates() -> list[SavedTemplate]:
    """Every saved template, by name."""
    return list(db.session.scalars(sa.select(SavedTemplate).order_by(sa.func.lower(SavedTemplate.name))))


def get_template(template_id: int) -> SavedTemplate | None:
    """The template with this id, or None."""
    return db.session.get(SavedTemplate, template_id)


def create_template(fields: TemplateFields, actor: Organiser | str) -> SavedTemplate:
    """A new saved template."""
    values = clean_template_fields(fields)
    template = SavedTemplate(created_by_id=actor.id if isinstance(actor, Organiser) else None, **values)
    db.session.add(template)
    db.session.flush()
    audit.record(actor, "campaign_template.create", "campaign_template", template.id)
    return template


def update_template(template: SavedTemplate, fields: TemplateFields, actor: Organiser | str) -> SavedTemplate:
    """Change a saved template; campaigns already started from it keep their own copy."""
    for key, value in clean_template_fields(fields, template).items():
        setattr(template, key, value)
    db.session.flush()
    audit.record(actor, "campaign_template.update", "campaign_template", template.id)
    return template


def delete_template(template: SavedTemplate, actor: Organiser | str) -> None:
    """Delete a saved template; campaigns started from it are not touched."""
    audit.record(actor, "campaign_template.delete", "campaign_template", template.id)
    db.session.delete(template)
    db.session.flush()


def fields_from_campaign(campaign: Campaign, name: str) -> TemplateFields:
    """A template's fields taken from a campaign ("save this campaign as a template")."""
    return TemplateFields(
        name=name,
        subject=campaign.subject,
        preheader=campaign.preheader,
        body_format=campaign.body_format,
        body=campaign.body,
    )
