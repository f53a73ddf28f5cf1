"""An import job's upload and report, kept in the database in chunks of CHUNK_BYTES.

The web server that receives an upload and the worker that runs the import may be different machines sharing only
PostgreSQL and Redis, so neither file may live in a folder. Each is written and read a chunk at a time, one query per
chunk (a chunk may be shorter than CHUNK_BYTES), so a file of IMPORT_MAX_BYTES is never one value in memory. A stored
file always has chunk 0 (empty for an empty file), so a file never stored, or deleted, is told apart from an empty one.
Like every service, this flushes and never commits.
"""

import contextlib
import itertools
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from .models import ImportFile, ImportFileKind

CHUNK_BYTES = 1024 * 1024


def store(job_id: int, kind: ImportFileKind, source: BinaryIO) -> int:
    """Write `source`, from where it stands to its end, as the job's file of this kind; return its size in bytes."""
    size = 0
    for sequence in itertools.count():
        data = source.read(CHUNK_BYTES)
        if data or sequence == 0:
            db.session.execute(sa.insert(ImportFile).values(job_id=job_id, kind=kind, sequence=sequence, data=data))
        if not data:
            return size
        size += len(data)


def is_stored(job_id: int, kind: ImportFileKind) -> bool:
    """Whether the job's file of this kind is kept."""
    return db.session.scalar(sa.select(sa.literal(True)).where(_chunk(job_id, kind, 0))) is not None


def chunks(job_id: int, kind: ImportFileKind) -> Iterator[bytes]:
    """The job's file of this kind, chunk by chunk, one query each (no cursor stays open between chunks)."""
    for sequence in itertools.count():
        data = db.session.scalar(sa.select(ImportFile.data).where(_chunk(job_id, kind, sequence)))
        if data is None:
            return
        yield bytes(data)


def size(job_id: int, kind: ImportFileKind) -> int:
    """The size in bytes of the job's file of this kind (0 if it is not kept)."""
    total = sa.func.coalesce(sa.func.sum(sa.func.length(ImportFile.data)), 0)
    return db.session.scalar(sa.select(total).where(ImportFile.job_id == job_id, ImportFile.kind == kind))


def scratch_file() -> BinaryIO:
    """A private temporary file (0600, with no name: the system removes it once it is closed, or if the process
    dies) in this machine's instance folder, which is on disk, where /tmp may be memory (tmpfs) too small for a
    200 MB upload."""
    return tempfile.TemporaryFile(mode="w+b", dir=current_app.instance_path, prefix="import-")


@contextlib.contextmanager
def private_copy(job_id: int, kind: ImportFileKind) -> Iterator[BinaryIO]:
    """The job's file copied into a scratch_file, positioned at its start, for readers that want a real file."""
    with scratch_file() as copy:
        for data in chunks(job_id, kind):
            copy.write(data)
        copy.seek(0)
        yield copy


def hand_over(from_job_id: int, to_job_id: int, kind: ImportFileKind) -> bool:
    """Move one job's file to another job (a dry run's upload to its real import); False if it was not kept."""
    moved = db.session.execute(
        sa.update(ImportFile)
        .where(ImportFile.job_id == from_job_id, ImportFile.kind == kind)
        .values(job_id=to_job_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(moved)


def delete(job_ids: Iterable[int], kind: ImportFileKind) -> None:
    """Delete these jobs' files of this kind (uploads and reports name people: nothing is kept longer than needed)."""
    job_ids = list(job_ids)
    if job_ids:
        db.session.execute(
            sa.delete(ImportFile)
            .where(ImportFile.job_id.in_(job_ids), ImportFile.kind == kind)
            .execution_options(synchronize_session=False)
        )


def _chunk(job_id: int, kind: ImportFileKind, sequence: int):
    return sa.and_(ImportFile.job_id == job_id, ImportFile.kind == kind, ImportFile.sequence == sequence)
