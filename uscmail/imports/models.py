"""An import started from the organiser pages, run by a Celery task; the page polls its progress."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import UTCDateTime, enum_column, new_public_id, utcnow


class ImportStatus(enum.StrEnum):
    """Where an import job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportJob(db.Model):
    """One uploaded file and what became of it. The upload and the report are kept in the database (ImportFile
    chunks), so any worker on any machine can read them; `upload_name` and `report_name` say that they are kept. The
    row itself holds counts only, never addresses."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_public_id)
    organiser_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisers.id", ondelete="SET NULL"), index=True)
    # A real import started from a dry run's page names that dry run; unique, so a dry run is imported at most once.
    from_dry_run_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("import_jobs.id", ondelete="SET NULL"), unique=True
    )
    status: Mapped[ImportStatus] = mapped_column(enum_column(ImportStatus), default=ImportStatus.QUEUED)
    dry_run: Mapped[bool] = mapped_column(default=False)
    basis: Mapped[str] = mapped_column(sa.String(32))
    basis_note: Mapped[str] = mapped_column(sa.String(200))
    list_slugs: Mapped[list] = mapped_column(sa.JSON, default=list)
    filename: Mapped[str] = mapped_column(sa.String(200), default="")
    upload_name: Mapped[str | None] = mapped_column(sa.String(64))
    report_name: Mapped[str | None] = mapped_column(sa.String(64))
    bytes_total: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bytes_read: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    counts: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        """How far through the file the import has read, 0-100."""
        if self.status is ImportStatus.DONE:
            return 100
        return min(99, self.bytes_read * 100 // self.bytes_total) if self.bytes_total else 0


class ImportFileKind(enum.StrEnum):
    """Which of a job's files a chunk belongs to."""

    UPLOAD = "upload"
    REPORT = "report"


class ImportFile(db.Model):
    """One chunk (at most CHUNK_BYTES) of a job's upload or report. Kept in the database, not in a folder, because
    the web server that receives an upload and the worker that reads it may be different machines that share only
    PostgreSQL and Redis; chunked, so a 200 MB upload is never one value in memory."""

    __tablename__ = "import_files"

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[ImportFileKind] = mapped_column(enum_column(ImportFileKind), primary_key=True)
    sequence: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
