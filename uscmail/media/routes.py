"""Organiser pages of the media library: the library with its upload form, an image's page (alt text, where it is
used), and deletion after a confirmation. Viewers may look; editors upload, edit and delete.

Views parse input, call the media services, commit, and render; every route checks the role itself.
"""

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from ..extensions import csrf, db
from ..inputguard import database_id, upload_limit
from ..organisers import access
from ..organisers.models import Role
from ..validation import InvalidInput
from . import services
from .forms import AltTextForm, DeleteForm, UploadForm
from .models import MediaImage
from .processing import ACCEPTED, file_size, megabytes

bp = Blueprint("media", __name__, url_prefix="/organisers/media")
bp.before_request(access.load_current_session)

# Ids in URLs fit PostgreSQL's integer column; larger ones are simply not found.
ID = "int(max=2147483647)"


@bp.app_context_processor
def media_helpers() -> dict:
    """What the media templates (and the compose page's picker) use: thumbnail paths, limits, the picker's images."""
    return {
        "media_path": services.image_path,
        "media_url": services.image_url,
        "media_picker_images": services.all_images,
        "media_accepted": ACCEPTED,
        "megabytes": megabytes,
        "file_size": file_size,
    }


def image_or_404(image_id: int) -> MediaImage:
    """The image, or a 404 page."""
    return services.get_image(image_id) or abort(404)


def render_library(form: UploadForm | None = None, error: str | None = None, status: int = 400):
    """The library page: the upload form, then the images, newest first, with where each is used."""
    before = database_id(request.args.get("before"))
    images = services.images_page(before)
    return render_template(
        "media/library.html",
        form=form or UploadForm(),
        images=images,
        usage=services.campaigns_using(images),
        next_before=images[-1].id if len(images) == services.PAGE_SIZE else None,
        paged=before is not None,
        max_bytes=current_app.config["MEDIA_MAX_BYTES"],
        error=error,
    ), status if error else 200


@bp.get("")
@access.role_required(Role.VIEWER)
def library():
    """Every image in the library."""
    return render_library()


@bp.post("")
@csrf.exempt  # the form's own CSRF field is checked below, once the larger upload limit applies
@upload_limit("MEDIA_MAX_BYTES", "images")
@access.role_required(Role.EDITOR)
def upload():
    """Re-encode and store an uploaded image with its alt text; a refusal says why and stores nothing."""
    form = UploadForm()
    if not form.validate_on_submit():
        return render_library(form, "This form expired or was sent from somewhere else. Please reload and try again.")
    upload_file = form.image.data
    if upload_file is None or not getattr(upload_file, "filename", ""):
        return render_library(form, f"Please choose an image file ({ACCEPTED}).")
    try:
        image = services.upload_image(upload_file.read(), form.alt_text.data, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_library(form, str(exc), getattr(exc, "status", 400))
    db.session.commit()
    flash(f"The image “{image.alt_text}” is in the library ({image.width} × {image.height} pixels in mail).")
    return redirect(url_for(".library"))


@bp.get(f"/<{ID}:image_id>")
@access.role_required(Role.VIEWER)
def image(image_id: int):
    """One image: its renditions, alt text (editable by editors) and the campaigns that show it."""
    found = image_or_404(image_id)
    return render_image(found, AltTextForm(data={"alt_text": found.alt_text}))


def render_image(found: MediaImage, form: AltTextForm, error: str | None = None):
    """The image's page, with an error if given (400)."""
    return render_template(
        "media/image.html", image=found, form=form, used_by=services.campaigns_using([found])[found.id], error=error
    ), 400 if error else 200


@bp.post(f"/<{ID}:image_id>/alt-text")
@access.role_required(Role.EDITOR)
def alt_text(image_id: int):
    """Change the image's alt text."""
    found = image_or_404(image_id)
    form = AltTextForm()
    try:
        services.update_alt_text(found, form.alt_text.data, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return render_image(found, form, str(exc))
    db.session.commit()
    flash(
        "The alt text is saved. Campaigns keep the words they were written with; insert the image again to update one."
    )
    return redirect(url_for(".image", image_id=found.id))


@bp.route(f"/<{ID}:image_id>/delete", methods=["GET", "POST"])
@access.role_required(Role.EDITOR)
def delete(image_id: int):
    """Delete an image after a confirmation; refused (409) while a campaign that went out shows it."""
    found = image_or_404(image_id)
    form = DeleteForm()
    used_by = services.campaigns_using([found])[found.id]
    error, status = None, 200
    if request.method == "POST" and form.validate_on_submit():
        alt = found.alt_text
        try:
            names = services.delete_image(found, g.organiser)
        except InvalidInput as exc:
            db.session.rollback()
            error, status = str(exc), 409
        else:
            db.session.commit()
            services.remove_files(names)
            flash(f"The image “{alt}” is deleted.")
            return redirect(url_for(".library"))
    return render_template("media/confirm_delete.html", image=found, form=form, used_by=used_by, error=error), status
