"""Organiser pages: upload a CSV file to import, follow the job's progress, download its report, import a dry run
for real; export (admins: a page with filters, and a POST that downloads)."""

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from wtforms.fields.choices import SelectChoice

from ..extensions import csrf, db
from ..inputguard import upload_limit
from ..models import SubscriptionStatus
from ..organisers import access
from ..organisers.models import Role
from ..queueing import after_commit
from ..subscribers import lists as list_services
from ..subscribers.services import ConsentBasis
from ..validation import InvalidInput
from . import export, jobs, services, storage, tasks
from .export import ExportFilter
from .forms import ExportForm, ImportForm, ImportForRealForm
from .models import ImportFileKind, ImportStatus

bp = Blueprint("imports", __name__, url_prefix="/organisers")
bp.before_request(access.load_current_session)


@bp.route("/import", methods=["GET", "POST"])
@csrf.exempt  # the form's own CSRF field is checked below, once the larger upload limit applies
@upload_limit("IMPORT_MAX_BYTES", "CSV files to import")
@access.role_required(Role.EDITOR)
def upload():
    """The import form; a valid upload becomes a queued job and the browser goes to its progress page."""
    form = ImportForm()
    form.lists.choices = [SelectChoice(m.slug, m.name) for m in services.importable_lists()]
    error = None
    if form.validate_on_submit():
        try:
            job = jobs.create_job(
                form.file.data, form.lists.data, ConsentBasis(form.basis.data), form.note.data,
                form.dry_run.data, g.organiser,
            )  # fmt: skip
        except InvalidInput as exc:
            db.session.rollback()
            error = str(exc)
        else:
            after_commit(tasks.run_import, job.id)
            db.session.commit()
            return redirect(url_for(".job", public_id=job.public_id))
    elif request.method == "POST":
        error = "; ".join(message for messages in form.errors.values() for message in messages)
    return render_template("imports/upload.html", form=form, error=error), 400 if error else 200


@bp.route("/import/<public_id>")
@access.role_required(Role.EDITOR)
def job(public_id: str):
    """A job's progress (the page refreshes itself until the job ends), then its counts and report."""
    found = jobs.job_for(public_id, g.organiser) or abort(404)
    return _job_page(found)


def _job_page(found, error: str | None = None):
    """The job's page, with an error above it (400) when "Import for real" was refused."""
    running = found.status in (ImportStatus.QUEUED, ImportStatus.RUNNING)
    page = render_template(
        "imports/job.html",
        job=found,
        running=running,
        basis=services.BASIS_LABELS[ConsentBasis(found.basis)],
        list_names=services.list_names(found.list_slugs),
        skip_labels=services.SKIP_LABELS,
        real_import=jobs.real_import_of(found) if found.dry_run else None,
        form=ImportForRealForm(),
        keep_hours=current_app.config["IMPORT_DRY_RUN_KEEP_HOURS"],
        error=error,
    )
    response = make_response(page, 400 if error else 200)
    if running:
        response.headers["Refresh"] = "2"  # works without JavaScript, like a meta refresh
    return response


@bp.post("/import/<public_id>/import")
@access.role_required(Role.EDITOR)
def import_for_real(public_id: str):
    """Import a dry run's file for real, with the same choices, without uploading it again."""
    found = jobs.job_for(public_id, g.organiser) or abort(404)
    if not ImportForRealForm().validate_on_submit():
        abort(400)
    try:
        job = jobs.import_for_real(found, g.organiser)
    except InvalidInput as exc:
        db.session.rollback()
        return _job_page(found, str(exc))
    after_commit(tasks.run_import, job.id)
    db.session.commit()
    return redirect(url_for(".job", public_id=job.public_id), code=303)


@bp.route("/import/<public_id>/report.csv")
@access.role_required(Role.EDITOR)
def report(public_id: str):
    """The skipped rows of a finished job, as a CSV download."""
    found = jobs.job_for(public_id, g.organiser) or abort(404)
    if not jobs.has_report(found):
        abort(404)
    app = current_app._get_current_object()
    job_id = found.id

    def chunks():
        # Read from the database a chunk at a time while the body is sent, in an app context (and session) of its own.
        with app.app_context():
            yield from storage.chunks(job_id, ImportFileKind.REPORT)

    response = Response(chunks(), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename=f"import-{public_id}-report.csv")
    response.headers["Content-Length"] = str(storage.size(job_id, ImportFileKind.REPORT))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/export.csv")
@access.role_required(Role.ADMIN)
def old_export_link():
    """The old one-click download: it now only leads to the export page, where a POST downloads."""
    return redirect(url_for(".export_page"), code=303)


@bp.route("/export", methods=["GET", "POST"])
@access.role_required(Role.ADMIN)
def export_page():
    """The export page (filters and a warning); its POST streams the chosen subscribers as CSV, audited first."""
    form = ExportForm()
    form.lists.choices = [SelectChoice(m.id, m.name) for m in list_services.all_lists()]
    if not form.validate_on_submit():
        error = None
        if request.method == "POST":
            error = "; ".join(message for messages in form.errors.values() for message in messages)
        page = render_template(
            "imports/export.html", form=form, error=error, everyone=export.count_matching(ExportFilter())
        )
        return page, 400 if error else 200
    chosen = ExportFilter(
        list_ids=tuple(form.lists.data or ()),
        status=SubscriptionStatus(form.status.data) if form.status.data else None,
        joined_from=form.joined_from.data,
        joined_to=form.joined_to.data,
    )
    export.record_export(g.organiser, chosen)
    db.session.commit()
    app = current_app._get_current_object()

    def chunks():
        # The body is sent after this view returns; the generator holds an app context (and session) of its own.
        with app.app_context():
            yield from export.export_chunks(chosen)

    response = Response(chunks(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="uscmail-subscribers.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
