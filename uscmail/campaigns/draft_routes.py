"""Organiser pages for drafts, on the campaigns blueprint: autosave (JSON for campaigns.js), duplicate, delete after
a confirmation, and "save this campaign as a template"."""

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..organisers import access
from ..organisers.models import Role
from ..validation import InvalidInput
from . import drafts, saved_templates
from .forms import ActionForm, CampaignForm, SaveAsTemplateForm
from .revisions import EditConflict
from .routes import ID, back_to, bp, campaign_or_404, render_campaign, status_for
from .services import TransitionRefused


@bp.post("/autosave", defaults={"campaign_id": None})
@bp.post(f"/<{ID}:campaign_id>/autosave")
@access.role_required(Role.EDITOR)
def autosave(campaign_id: int | None):
    """Save the compose form as it stands (the CSRF token comes with it) and answer in JSON: the revision and the
    time, or why it was not saved (400 for content to fix, 409 when the campaign changed elsewhere or is not a
    draft). The first autosave of a new campaign creates the draft and says where it now lives."""
    campaign = campaign_or_404(campaign_id) if campaign_id is not None else None
    form = CampaignForm()
    try:
        saved = drafts.autosave(campaign, form.campaign_fields(), g.organiser, form.based_on_revision())
    except InvalidInput as exc:
        db.session.rollback()
        stop = isinstance(exc, EditConflict | TransitionRefused)
        return jsonify({"error": str(exc), "stop": stop}), status_for(exc)
    db.session.commit()
    campaign_id = saved.campaign.id
    return jsonify(
        {
            "campaign_id": campaign_id,
            "revision": saved.revision,
            "saved_at": saved.saved_at,
            "edit_url": url_for(".compose", campaign_id=campaign_id),
            "autosave_url": url_for(".autosave", campaign_id=campaign_id),
        }
    )


@bp.post(f"/<{ID}:campaign_id>/duplicate")
@access.role_required(Role.EDITOR)
def duplicate(campaign_id: int):
    """Copy any campaign into a new draft and open the copy for editing."""
    original = campaign_or_404(campaign_id)
    copy = drafts.duplicate_campaign(original, g.organiser)
    db.session.commit()
    flash("This is a new draft copied from the campaign. Change what you need, then save it.")
    return redirect(url_for(".compose", campaign_id=copy.id))


@bp.route(f"/<{ID}:campaign_id>/delete", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def delete(campaign_id: int):
    """Ask before deleting a draft for good; the POST deletes it (refused, with the reason, once sending began)."""
    campaign = campaign_or_404(campaign_id)
    if request.method == "POST":
        subject = campaign.subject
        try:
            drafts.delete_draft(campaign, g.organiser)
        except InvalidInput as exc:
            db.session.rollback()
            return render_campaign(campaign, error=str(exc), status=status_for(exc))
        db.session.commit()
        flash(f"The draft “{subject}” is deleted.")
        return redirect(url_for(".index"))
    if not campaign.editable:
        return back_to(campaign.id, f"This campaign is {campaign.status.value}; only drafts can be deleted.")
    return render_template("campaigns/confirm_delete.html", campaign=campaign, form=ActionForm())


@bp.post(f"/<{ID}:campaign_id>/save-as-template")
@access.role_required(Role.EDITOR)
def save_as_template(campaign_id: int):
    """Keep the saved campaign's subject, preheader and body as a new template under the name given."""
    campaign = campaign_or_404(campaign_id)
    form = SaveAsTemplateForm()
    try:
        template = saved_templates.create_template(
            saved_templates.fields_from_campaign(campaign, form.name.data or ""), g.organiser
        )
        db.session.commit()
    except InvalidInput as exc:
        db.session.rollback()
        return render_campaign(campaign, error=str(exc), template_form=form)
    except IntegrityError:  # the same name, saved by someone else a moment ago
        db.session.rollback()
        return render_campaign(campaign, error="There is already a template with that name.", template_form=form)
    flash(f"The campaign is saved as the template “{template.name}”.")
    return redirect(url_for("campaign_templates.edit", template_id=template.id))
