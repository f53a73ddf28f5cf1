"""Images in the media library: one row per upload, naming its stored renditions by a random public id."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import UTCDateTime, enum_column, new_public_id, utcnow
from ..organisers.models import Organiser


class ImageFormat(enum.StrEnum):
    """How an image is stored and served, decided from the decoded image (WebP is stored as PNG or JPEG: several
    mail clients can't show WebP)."""

    PNG = "png"
    JPEG = "jpeg"
    GIF = "gif"

    @property
    def extension(self) -> str:
        """The file name's ending, without the dot."""
        return "jpg" if self is ImageFormat.JPEG else self.value

    @property
    def content_type(self) -> str:
        """The Content-Type it is served with."""
        return f"image/{self.value}"


class MediaImage(db.Model):
    """An uploaded image: its alt text, the size of its mail rendition (at most MAIL_WIDTH wide), whether a rendition
    twice as wide exists for high-density screens, who uploaded it and when. The files are named by `public_id`."""

    __tablename__ = "media_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The name of its files and URLs: random, so it reveals nothing (no original filename) and can't be guessed.
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_public_id)
    format: Mapped[ImageFormat] = mapped_column(enum_column(ImageFormat))
    alt_text: Mapped[str] = mapped_column(sa.String(300))
    width: Mapped[int]
    height: Mapped[int]
    high_density: Mapped[bool] = mapped_column(default=False)
    # Bytes stored, all renditions together.
    size_bytes: Mapped[int]
    uploaded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    uploaded_by: Mapped[Organiser | None] = relationship(lazy="joined")

    def file_name(self, high_density: bool = False) -> str:
        """The stored (and served) name of a rendition: `<public_id>.<ext>`, or `<public_id>-2x.<ext>`."""
        return f"{self.public_id}{'-2x' if high_density else ''}.{self.format.extension}"

    def file_names(self) -> list[str]:
        """Every stored rendition's name."""
        return [self.file_name(), *([self.file_name(high_density=True)] if self.high_density else [])]
