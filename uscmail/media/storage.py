"""Where the library's files live, behind one small interface: a directory on local disk (MEDIA_DIR, the default),
or an S3-compatible bucket (MEDIA_S3_BUCKET) where a deployment has one. Either way the files are served from our own
domain (media/public.py), so a recipient's mail client never fetches anything from a third party.

boto3 is needed only for S3, and imported only when a bucket is configured; it is not in requirements.txt.
"""

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from flask import current_app

# The names the library gives its files (models.MediaImage.file_name): nothing else is ever read or written.
FILE_NAME = re.compile(r"^[A-Za-z0-9_-]{16,32}(?:-2x)?\.(?:png|jpg|gif)$")


class MediaStore(Protocol):
    """Stores and reads the library's files by name."""

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Write a file (replacing one of the same name)."""

    def get(self, name: str) -> bytes | None:
        """A file's bytes, or None if there is no such file."""

    def delete(self, name: str) -> None:
        """Remove a file; nothing happens if it is not there."""


def checked_name(name: str) -> str:
    """`name` if it is one of the library's file names; ValueError otherwise (never a path of any other kind)."""
    if not FILE_NAME.match(name):
        raise ValueError(f"not a media file name: {name!r}")
    return name


class LocalMediaStore:
    """Files in one directory; each is written to a temporary file first and renamed, so a reader never sees half."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Write the file atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / checked_name(name)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes | None:
        """The file's bytes, or None."""
        try:
            return (self.directory / checked_name(name)).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        """Remove the file if it is there."""
        (self.directory / checked_name(name)).unlink(missing_ok=True)


class S3MediaStore:
    """Files as objects in an S3-compatible bucket, under a key prefix. Credentials come from boto3's usual places
    (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance role)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None):
        import boto3  # only deployments with a bucket need it

        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Upload the object."""
        self.client.put_object(
            Bucket=self.bucket, Key=self.prefix + checked_name(name), Body=data, ContentType=content_type
        )

    def get(self, name: str) -> bytes | None:
        """The object's bytes, or None if there is no such key."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + checked_name(name))
        except self.client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read()

    def delete(self, name: str) -> None:
        """Delete the object (S3 answers the same whether it existed or not)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + checked_name(name))


def media_store() -> MediaStore:
    """The store the settings name, made once per app."""
    store = current_app.extensions.get("uscmail.media_store")
    if store is None:
        config = current_app.config
        if config.get("MEDIA_S3_BUCKET"):
            store = S3MediaStore(
                config["MEDIA_S3_BUCKET"],
                prefix=config.get("MEDIA_S3_PREFIX", ""),
                endpoint_url=config.get("MEDIA_S3_ENDPOINT_URL"),
                region=config.get("MEDIA_S3_REGION"),
            )
        else:
            store = LocalMediaStore(config["MEDIA_DIR"])
        current_app.extensions["uscmail.media_store"] = store
    return store
