"""The backup directory on disk: created private (0700, files 0600: it holds the list), checksums, the manifest,
and the media archive (a tar of the library's files, read back one checked name at a time)."""

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..media.storage import FILE_NAME, MediaStore

MANIFEST = "manifest.json"
MEDIA_ARCHIVE = "media.tar"
MANIFEST_FORMAT = 1
# What each kind of library file is served as (the names end in one of these).
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif"}


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do (it never names a person)."""


def private_directory(path: Path) -> Path:
    """Create `path` (and missing parents) readable by its owner only; an existing directory is made private too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def private_file(path: Path):
    """Open a new file for writing in binary, mode 0600 whatever the umask; refuse to replace an existing file."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: dict) -> None:
    """Write manifest.json (0600)."""
    with private_file(directory / MANIFEST) as stream:
        stream.write(json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")


def read_manifest(directory: Path) -> dict:
    """The manifest of a backup directory; BackupError if it is missing, unreadable or of another format."""
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupError(f"{directory} is not a backup: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{path} is not a readable manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{path} is not a manifest this version of uscmail reads (format {MANIFEST_FORMAT})")
    return manifest


def check_file(directory: Path, entry: dict) -> Path:
    """The file a manifest entry names, after checking its SHA-256; BackupError if missing or changed."""
    name = entry.get("file")
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise BackupError("the manifest names no file, or a file outside the backup")
    path = directory / name
    if not path.is_file():
        raise BackupError(f"{path} is missing")
    if sha256_of(path) != entry.get("sha256"):
        raise BackupError(f"{path} does not match the SHA-256 in the manifest: it is damaged or was changed")
    return path


def archive_media(media_dir: Path, target: Path) -> dict[str, str]:
    """Write a tar of the library's files in `media_dir` (only names the library gives its files; partial uploads and
    anything else are left out) to `target` (0600); return each file's SHA-256 by name."""
    checksums = {}
    with private_file(target) as stream, tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        names = sorted(p.name for p in media_dir.iterdir() if p.is_file()) if media_dir.is_dir() else []
        for name in names:
            if not FILE_NAME.match(name):
                continue
            data = (media_dir / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int((media_dir / name).stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
            checksums[name] = hashlib.sha256(data).hexdigest()
    return checksums


def media_files(archive: Path, expected: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    """Each file of a media archive with its bytes, checked: only regular files with the library's names, each
    listed in the manifest with the same SHA-256, and every listed file present."""
    seen = set()
    with tarfile.open(archive, mode="r:") as tar:
        for member in tar:
            if not member.isfile() or not FILE_NAME.match(member.name) or member.name not in expected:
                raise BackupError(f"{archive} holds an entry the manifest does not list: {member.name!r}")
            data = tar.extractfile(member).read()
            if hashlib.sha256(data).hexdigest() != expected[member.name]:
                raise BackupError(f"{archive}: {member.name} does not match its SHA-256 in the manifest")
            seen.add(member.name)
            yield member.name, data
    missing = set(expected) - seen
    if missing:
        raise BackupError(f"{archive} lacks {len(missing)} media file(s) the manifest lists")


def media_clashes(archive: Path, expected: dict[str, str], store: MediaStore) -> int:
    """How many of the archive's files are already in `store` with other bytes (the archive is checked on the way)."""
    return sum(1 for name, data in media_files(archive, expected) if store.get(name) not in (None, data))


def restore_media(archive: Path, expected: dict[str, str], store: MediaStore) -> tuple[int, int]:
    """Put every file of the (checked) archive into `store`, then read each back and check its SHA-256. Returns
    (files written, files already there with the same bytes)."""
    written = same = 0
    for name, data in media_files(archive, expected):
        if store.get(name) == data:
            same += 1
            continue
        store.put(name, data, CONTENT_TYPES[Path(name).suffix])
        written += 1
    for name, checksum in expected.items():
        stored = store.get(name)
        if stored is None or hashlib.sha256(stored).hexdigest() != checksum:
            raise BackupError(f"the media file {name} does not read back as it was written")
    return written, same
