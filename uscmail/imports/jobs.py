"""Imports started from the organiser page: the upload is kept in the database (storage.py) and a Celery task runs
it, on whichever worker machine takes it."""

import io
import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from werkzeug.datastructures import FileStorage

from ..extensions import db
from ..models import utcnow
from ..organisers.models import Organiser, Role
from ..subscribers.services import ConsentBasis
from ..validation import InvalidInput
from . import services, storage
from .models import ImportFileKind, ImportJob, ImportStatus
from .reader import ImportFileError

log = logging.getLogger(__name__)
UNEXPECTED_FAILURE = "The import failed on our side; nothing was imported. Please try again, or tell an admin."
MISSING_UPLOAD = "The uploaded file is no longer kept; nothing was imported. Please upload it again."
UPLOAD, REPORT = ImportFileKind.UPLOAD, ImportFileKind.REPORT


def create_job(
    upload: FileStorage, slugs: list[str], basis: ConsentBasis, note: str, dry_run: bool, organiser: Organiser
) -> ImportJob:
    """Check the choices, add a queued job and store the upload with it, streamed in chunks; the caller commits, then
    queues run_import."""
    services.resolve_lists(slugs)
    note = services.check_basis_note(note)
    job = ImportJob(
        organiser_id=organiser.id,
        dry_run=dry_run,
        basis=basis.value,
        basis_note=note,
        list_slugs=list(dict.fromkeys(slugs)),
        filename=(upload.filename or "upload.csv")[:200],
        upload_name=secrets.token_hex(16),
    )
    db.session.add(job)
    db.session.flush()
    job.bytes_total = storage.store(job.id, UPLOAD, upload.stream)
    db.session.flush()
    return job


def import_for_real(dry_run: ImportJob, organiser: Organiser) -> ImportJob:
    """A queued real import of a finished dry run's kept upload, with the same lists, basis and note; the caller
    commits, then queues run_import. The dry run gives up its upload in one conditional UPDATE (and the new job names
    it, uniquely), so however often the button is pressed, at once or later, the file is imported once. InvalidInput
    if the dry run is not finished, was imported already, or its upload is no longer kept."""
    if not dry_run.dry_run or dry_run.status is not ImportStatus.DONE:
        raise InvalidInput("Only a finished dry run can be imported for real.")
    if real_import_of(dry_run) is not None:
        raise InvalidInput("This dry run has already been imported for real.")
    services.resolve_lists(dry_run.list_slugs)
    upload_name = dry_run.upload_name
    claimed = (
        upload_name is not None
        and db.session.execute(
            sa.update(ImportJob)
            .where(ImportJob.id == dry_run.id, ImportJob.upload_name == upload_name)
            .values(upload_name=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    )
    no_longer_kept = "The file of this dry run is no longer kept (or was imported already); please upload it again."
    if not claimed:
        raise InvalidInput(no_longer_kept)
    job = ImportJob(
        organiser_id=organiser.id,
        dry_run=False,
        basis=dry_run.basis,
        basis_note=dry_run.basis_note,
        list_slugs=list(dry_run.list_slugs),
        filename=dry_run.filename,
        upload_name=upload_name,
        bytes_total=dry_run.bytes_total,
        from_dry_run_id=dry_run.id,
    )
    db.session.add(job)
    db.session.flush()
    if not storage.hand_over(dry_run.id, job.id, UPLOAD):
        raise InvalidInput(no_longer_kept)  # the caller rolls back, so the new job and the claim go too
    return job


def real_import_of(dry_run: ImportJob) -> ImportJob | None:
    """The real import started from this dry run's page, if there is one."""
    return db.session.scalar(sa.select(ImportJob).where(ImportJob.from_dry_run_id == dry_run.id))


def job_for(public_id: str, organiser: Organiser) -> ImportJob | None:
    """A job by its public id, if this organiser started it (admins see every job)."""
    job = db.session.scalar(sa.select(ImportJob).where(ImportJob.public_id == public_id))
    if job is None or (job.organiser_id != organiser.id and organiser.role is not Role.ADMIN):
        return None
    return job


def has_report(job: ImportJob) -> bool:
    """Whether the job's report is kept (a finished job's, until IMPORT_REPORT_RETENTION_DAYS)."""
    return job.report_name is not None and storage.is_stored(job.id, REPORT)


def _record_progress(job_id: int, bytes_read: int, rows: int) -> None:
    """Progress goes through a connection of its own, so the page sees it while the import's transaction is open."""
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(ImportJob).where(ImportJob.id == job_id).values(bytes_read=bytes_read, counts={"rows": rows})
        )


def run_job(job_id: int) -> ImportStatus | None:
    """Claim a queued job and run it; the import and the job's outcome are committed together. Returns the outcome,
    or None if the job was not queued (already claimed by another delivery of the task)."""
    claimed = db.session.execute(
        sa.update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status == ImportStatus.QUEUED)
        .values(status=ImportStatus.RUNNING, started_at=utcnow())
    ).rowcount
    db.session.commit()
    if not claimed:
        return None
    job = db.session.get(ImportJob, job_id)
    dry_run = job.dry_run
    try:
        if job.upload_name is None or not storage.is_stored(job_id, UPLOAD):
            raise ImportFileError(MISSING_UPLOAD)  # e.g. a job uploaded before imports were kept in the database
        lists = services.resolve_lists(job.list_slugs)
        actor = db.session.get(Organiser, job.organiser_id) if job.organiser_id else "import job"
        # The worker reads a private copy of the upload and writes the report to another; neither has a name, so
        # the system removes both once closed, even if this process is killed.
        with storage.private_copy(job_id, UPLOAD) as binary, storage.scratch_file() as report_file:
            out = io.TextIOWrapper(report_file, encoding="utf-8", newline="")
            result = services.import_subscribers(
                binary,
                lists,
                ConsentBasis(job.basis),
                job.basis_note,
                actor,
                dry_run=dry_run,
                report=out,
                progress=lambda bytes_read, rows: _record_progress(job_id, bytes_read, rows),
            )
            out.detach()  # flushes the report into report_file, leaving report_file open
            services.queue_confirmation_mails(result)  # sent once _finish commits
            if dry_run:
                db.session.rollback()  # a dry run writes nothing but its report and outcome
            report_file.seek(0)
            storage.store(job_id, REPORT, report_file)
    except (InvalidInput, ImportFileError, services.ImportConflict) as exc:
        db.session.rollback()
        _finish(job_id, ImportStatus.FAILED, error=str(exc))
        return ImportStatus.FAILED
    except Exception as exc:
        # Whatever went wrong, the job finishes (not "running" for hours) and the log names no address: a database
        # error quotes the row it was writing, so only the kind of error is logged.
        db.session.rollback()
        log.error("import job %s failed: %s", job_id, type(exc).__name__)
        _finish(job_id, ImportStatus.FAILED, error=UNEXPECTED_FAILURE)
        return ImportStatus.FAILED
    counts = {
        "rows": result.rows,
        "imported": result.imported,
        "new_subscribers": result.new_subscribers,
        "subscriptions": result.subscriptions,
        "skipped": result.skipped,
        "summary": result.summary(),
    }
    # A dry run keeps its upload for "Import for real" on its page, until that or housekeeping deletes it.
    _finish(job_id, ImportStatus.DONE, keep_upload=dry_run, counts=counts, report_name=secrets.token_hex(16))
    return ImportStatus.DONE


def _finish(job_id: int, status: ImportStatus, keep_upload: bool = False, **values) -> None:
    """Record the job's outcome and commit it (with the import, for a real one); the upload is deleted in the same
    commit unless kept: it is personal data, not kept once read."""
    job = db.session.get(ImportJob, job_id)
    job.status = status
    job.finished_at = utcnow()
    if not keep_upload:
        storage.delete([job_id], UPLOAD)
        job.upload_name = None
    for name, value in values.items():
        setattr(job, name, value)
    if status is ImportStatus.DONE:
        job.bytes_read = job.bytes_total
    db.session.commit()


def housekeep(now=None) -> dict[str, int]:
    """Delete import reports (they name people) older than IMPORT_REPORT_RETENTION_DAYS and dry runs' uploads older
    than IMPORT_DRY_RUN_KEEP_HOURS, and fail jobs whose worker died mid-run (nothing of theirs was written: an import
    commits in one transaction), removing their uploads. Job rows stay, holding counts only. Returns how many reports
    and uploads were deleted and jobs failed."""
    now = now or utcnow()
    upload_cutoff = now - timedelta(hours=current_app.config["IMPORT_DRY_RUN_KEEP_HOURS"])
    kept_uploads = db.session.scalars(
        sa.select(ImportJob).where(
            ImportJob.dry_run.is_(True),
            ImportJob.status == ImportStatus.DONE,
            ImportJob.upload_name.is_not(None),
            ImportJob.finished_at < upload_cutoff,
        )
    ).all()
    storage.delete([job.id for job in kept_uploads], UPLOAD)
    for job in kept_uploads:
        job.upload_name = None
    report_cutoff = now - timedelta(days=current_app.config["IMPORT_REPORT_RETENTION_DAYS"])
    stuck_cutoff = now - timedelta(hours=current_app.config["IMPORT_STUCK_HOURS"])
    old_reports = db.session.scalars(
        sa.select(ImportJob).where(ImportJob.report_name.is_not(None), ImportJob.finished_at < report_cutoff)
    ).all()
    storage.delete([job.id for job in old_reports], REPORT)
    for job in old_reports:
        job.report_name = None
    stuck = db.session.scalars(
        sa.select(ImportJob).where(ImportJob.status == ImportStatus.RUNNING, ImportJob.started_at < stuck_cutoff)
    ).all()
    storage.delete([job.id for job in stuck], UPLOAD)
    for job in stuck:
        job.upload_name = None
        job.status = ImportStatus.FAILED
        job.finished_at = now
        job.error = (
            "The import stopped part-way (the worker was restarted). Nothing was imported; please start it again."
        )
    db.session.flush()
    return {"reports_deleted": len(old_reports), "uploads_deleted": len(kept_uploads), "jobs_failed": len(stuck)}
