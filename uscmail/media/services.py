"""The media library's operations, called the same way from pages and tests: upload (re-encode and store), change
alt text, list with where each image is used, and delete (refused while a campaign that went out shows it).

Services flush and never commit. Files are written before the row is flushed (a failure removes them again) and
removed only after the deleting commit (`remove_files`), so no row ever names a missing file.
"""

import re

import sqlalchemy as sa
from flask import current_app

from ..campaigns.models import Campaign, CampaignStatus
from ..extensions import db
from ..links import external_url
from ..models import new_public_id
from ..organisers import audit
from ..organisers.models import Organiser
from ..validation import InvalidInput, single_line_text
from .models import MediaImage
from .processing import process_upload
from .storage import media_store

ALT_TEXT_MAX_LENGTH = 300
# Campaign bodies are templates: these would start a template tag once the alt text is put into one.
TEMPLATE_SYNTAX = re.compile(r"\{[{%#]|[}%#]\}")
PAGE_SIZE = 60


class ImageInUse(InvalidInput):
    """The image can't be deleted: mail that went out (or is about to) shows it. Answered 409."""


def check_alt_text(raw: str | None) -> str:
    """Alt text, trimmed: required, one line, at most ALT_TEXT_MAX_LENGTH characters, no template syntax."""
    alt_text = single_line_text(
        raw,
        "alt text",
        ALT_TEXT_MAX_LENGTH,
        missing="Please describe the image in the alt text: readers who can't see images hear or read it instead.",
    )
    if TEMPLATE_SYNTAX.search(alt_text):
        raise InvalidInput("The alt text can't contain {{, {%, {# or their closing pairs: they would start a template.")
    return alt_text


def upload_image(data: bytes, alt_text: str | None, organiser: Organiser | str) -> MediaImage:
    """Re-encode an upload, store its renditions and add it to the library; InvalidInput (ImageRefused with its
    status) for anything refused, leaving nothing stored."""
    alt_text = check_alt_text(alt_text)
    config = current_app.config
    processed = process_upload(data, config["MEDIA_MAX_BYTES"], config["MEDIA_MAX_PIXELS"])
    image = MediaImage(
        format=processed.format,
        alt_text=alt_text,
        width=processed.width,
        height=processed.height,
        high_density=processed.high_density is not None,
        size_bytes=processed.size_bytes,
        uploaded_by_id=organiser.id if isinstance(organiser, Organiser) else None,
        public_id=new_public_id(),  # now, not at flush: the files are named by it first
    )
    store = media_store()
    written = []
    try:
        for name, content in zip(image.file_names(), (processed.mail, processed.high_density), strict=False):
            store.put(name, content, image.format.content_type)
            written.append(name)
        db.session.add(image)
        db.session.flush()
        audit.record(
            organiser, "media.upload", "media_image", image.id,
            format=image.format.value, width=image.width, height=image.height, size_bytes=image.size_bytes,
        )  # fmt: skip
    except BaseException:
        remove_files(written)
        raise
    return image


def update_alt_text(image: MediaImage, alt_text: str | None, organiser: Organiser | str) -> None:
    """Change an image's alt text (campaigns already written keep the words they were given)."""
    image.alt_text = check_alt_text(alt_text)
    audit.record(organiser, "media.alt_text", "media_image", image.id)
    db.session.flush()


def get_image(image_id: int) -> MediaImage | None:
    """The image with this id, or None."""
    return db.session.get(MediaImage, image_id)


def image_by_public_id(public_id: str) -> MediaImage | None:
    """The image whose files are named by this public id, or None."""
    return db.session.scalar(sa.select(MediaImage).where(MediaImage.public_id == public_id))


def images_by_public_id(public_ids: set[str]) -> dict[str, MediaImage]:
    """The images named by these public ids, by public id (unknown ones left out)."""
    if not public_ids:
        return {}
    rows = db.session.scalars(sa.select(MediaImage).where(MediaImage.public_id.in_(sorted(public_ids))))
    return {image.public_id: image for image in rows}


def images_page(before_id: int | None = None, limit: int = PAGE_SIZE) -> list[MediaImage]:
    """The newest images (older than `before_id` if given), newest first."""
    query = sa.select(MediaImage).order_by(MediaImage.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(MediaImage.id < before_id)
    return list(db.session.scalars(query))


def all_images() -> list[MediaImage]:
    """Every image, newest first (for the compose page's picker)."""
    return list(db.session.scalars(sa.select(MediaImage).order_by(MediaImage.id.desc())))


def image_url(image: MediaImage, high_density: bool = False) -> str:
    """The absolute address of a rendition on our own domain (BASE_URL): the same for every recipient."""
    return external_url("media_files.image_file", name=image.file_name(high_density))


def image_path(image: MediaImage) -> str:
    """The mail rendition's address on this site, for our own pages (thumbnails)."""
    return image_url(image).removeprefix(current_app.config["BASE_URL"])


def campaigns_using(images: list[MediaImage]) -> dict[int, list[Campaign]]:
    """For each image, the campaigns whose body shows it (newest first). One query over the bodies that show any
    library image at all."""
    if not images:
        return {}
    campaigns = db.session.scalars(
        sa.select(Campaign).where(Campaign.body.contains("/media/")).order_by(Campaign.id.desc())
    ).all()
    return {
        image.id: [campaign for campaign in campaigns if f"/media/{image.public_id}" in campaign.body]
        for image in images
    }


def delete_image(image: MediaImage, organiser: Organiser | str) -> list[str]:
    """Delete an image's row and return its file names, for `remove_files` once the deletion is committed.
    ImageInUse if a campaign other than a draft shows it: mail that went out, or is about to, must keep its images."""
    sent = [campaign for campaign in campaigns_using([image])[image.id] if campaign.status is not CampaignStatus.DRAFT]
    if sent:
        names = ", ".join(f"“{campaign.subject}” ({campaign.status.value})" for campaign in sent[:5])
        raise ImageInUse(
            f"This image can't be deleted: {names} {'shows' if len(sent) == 1 else 'show'} it, and mail that has "
            "gone out (or is about to) must keep showing its images."
        )
    names = image.file_names()
    audit.record(organiser, "media.delete", "media_image", image.id, format=image.format.value)
    db.session.delete(image)
    db.session.flush()
    return names


def remove_files(names: list[str]) -> None:
    """Remove stored files; one that can't be removed is logged and left (its row is gone, so nothing shows it)."""
    store = media_store()
    for name in names:
        try:
            store.delete(name)
        except Exception:  # noqa: BLE001 - a file left behind is harmless; the delete itself has happened
            current_app.logger.warning("media file %s could not be removed", name, exc_info=True)
