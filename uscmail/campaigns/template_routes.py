"""Organiser pages for saved templates: the list (with "new campaign from this template"), create, edit, and delete
after a confirmation. Viewers may read the list; editors manage templates."""

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..organisers import access
from ..organisers.models import Role
from ..validation import InvalidInput
from . import saved_templates
from .forms import ActionForm, TemplateForm
from .models import SavedTemplate

bp = Blueprint("campaign_templates", __name__, url_prefix="/organisers/campaigns/templates")
bp.before_request(access.load_current_session)

ID = "int(max=2147483647)"
NAME_TAKEN = "There is already a template with that name; choose another name."


def template_or_404(template_id: int) -> SavedTemplate:
    """The template, or a 404 page."""
    template = saved_templates.get_template(template_id)
    if template is None:
        abort(404)
    return template


@bp.get("")
@access.role_required(Role.VIEWER)
def index():
    """Every saved template, each with a way to start a campaign from it."""
    return render_template("campaigns/templates/index.html", templates=saved_templates.all_templates())


def render_form(form: TemplateForm, template: SavedTemplate | None, error: str | None = None):
    """The template form; with an error, as the editor sent it (400)."""
    return render_template("campaigns/templates/form.html", form=form, template=template, error=error), (
        400 if error else 200
    )


@bp.route("/new", methods=["GET", "POST"], defaults={"template_id": None})
@bp.route(f"/<{ID}:template_id>/edit", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def edit(template_id: int | None):
    """Write a new template or change one; the body is checked as a campaign's is, and errors store nothing."""
    template = template_or_404(template_id) if template_id is not None else None
    if request.method == "GET":
        return render_form(TemplateForm.for_template(template), template)
    form = TemplateForm()
    try:
        if template is None:
            template = saved_templates.create_template(form.template_fields(), g.organiser)
        else:
            saved_templates.update_template(template, form.template_fields(), g.organiser)
        db.session.commit()
    except InvalidInput as exc:
        db.session.rollback()
        return render_form(form, template if template_id is not None else None, error=str(exc))
    except IntegrityError:  # the same name, saved by someone else a moment ago
        db.session.rollback()
        return render_form(form, template if template_id is not None else None, error=NAME_TAKEN)
    flash(f"The template “{template.name}” is saved.")
    return redirect(url_for(".index"))


@bp.route(f"/<{ID}:template_id>/delete", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def delete(template_id: int):
    """Ask before deleting a template; the POST deletes it. Campaigns started from it keep their content."""
    template = template_or_404(template_id)
    if request.method == "POST":
        name = template.name
        saved_templates.delete_template(template, g.organiser)
        db.session.commit()
        flash(f"The template “{name}” is deleted.")
        return redirect(url_for(".index"))
    return render_template("campaigns/templates/confirm_delete.html", template=template, form=ActionForm())
