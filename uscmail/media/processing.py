"""Uploaded images become images we made: Pillow decodes the upload (PNG, JPEG, WebP or GIF, whatever its name or the
browser's declared type say), applies its EXIF orientation, converts its colours to sRGB, and encodes new files from
the pixels alone. No metadata (EXIF and its GPS position, XMP, ICC profiles, text chunks, comments) and nothing else
of the uploaded bytes (an HTML page or script hidden after the image) survives.

Each image gets a rendition at most MAIL_WIDTH pixels wide for mail, and, if it is wider than that, one at most
HIGH_DENSITY_WIDTH wide for high-density screens. An animated GIF keeps its first frame only: a still image is what
most of the campaign's readers (Outlook shows the first frame) would see anyway, and decoding every frame of an
upload is a cost we need not take on.
"""

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from ..validation import InvalidInput
from .models import ImageFormat

MAIL_WIDTH = 600
HIGH_DENSITY_WIDTH = 1200
# The only decoders Pillow may try: anything else is refused, whatever it claims to be.
DECODERS = ("PNG", "JPEG", "WEBP", "GIF")
JPEG_QUALITY = 85
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
ACCEPTED = "PNG, JPEG, WebP or GIF"


class ImageRefused(InvalidInput):
    """An upload that is not an image we can take; the message says why. Answered 400."""

    status = 400


class ImageTooLarge(ImageRefused):
    """An upload with more bytes or pixels than the settings allow. Answered 413."""

    status = 413


@dataclass
class ProcessedImage:
    """The re-encoded renditions of one upload, and the size of the mail rendition."""

    format: ImageFormat
    width: int
    height: int
    mail: bytes
    high_density: bytes | None

    @property
    def size_bytes(self) -> int:
        """Bytes of every rendition together."""
        return len(self.mail) + len(self.high_density or b"")


def megabytes(size: int) -> str:
    """'5 MB' (MiB, as file managers count), '0.25 MB', '0.00977 MB'."""
    return f"{size / (1024 * 1024):.3g} MB"


def file_size(size: int) -> str:
    """A stored size in words: '11 kB', '1.2 MB'."""
    return f"{size / 1024:.0f} kB" if size < 1024 * 1024 else megabytes(size)


def process_upload(data: bytes, max_bytes: int, max_pixels: int) -> ProcessedImage:
    """Decode an upload and encode its renditions; ImageRefused (or ImageTooLarge) with a message for the organiser."""
    if not data:
        raise ImageRefused("That file is empty. Please choose an image file.")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"That file is {megabytes(len(data))}; images may be at most {megabytes(max_bytes)}.")
    image, source_format = decode(data, max_pixels)
    image = to_srgb(ImageOps.exif_transpose(image))
    stored = stored_format(source_format, image)
    mail = fit_width(image, MAIL_WIDTH)
    high_density = fit_width(image, HIGH_DENSITY_WIDTH) if image.width > MAIL_WIDTH else None
    return ProcessedImage(
        format=stored,
        width=mail.width,
        height=mail.height,
        mail=encode(mail, stored),
        high_density=None if high_density is None else encode(high_density, stored),
    )


def decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The first frame of the upload, fully decoded, and the format Pillow found; refuses anything it can't decode
    and anything with more than `max_pixels` pixels (checked from the header, before decoding: a decompression
    bomb is a small file that decodes to gigabytes)."""
    too_large = ImageTooLarge(
        f"That image has too many pixels to process safely (at most {max_pixels / 1e6:g} million). "
        "Please make it smaller and try again."
    )
    with warnings.catch_warnings():
        # Pillow warns, rather than refuses, up to twice its own limit; here that is a refusal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=DECODERS)
            if image.width * image.height > max_pixels:
                raise too_large
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise too_large from None
        except UnidentifiedImageError:
            raise ImageRefused(f"That file is not an image we can read. Please upload a {ACCEPTED} image.") from None
        except ImageRefused:
            raise
        except Exception:  # noqa: BLE001 - a damaged file can make a decoder raise nearly anything
            raise ImageRefused(
                f"That image is damaged or incomplete and can't be read. Please upload a {ACCEPTED} image."
            ) from None
    # Pillow names a JPEG with extra pictures (many cameras write one) MPO; its first picture is the photo.
    return image, "JPEG" if image.format == "MPO" else image.format


def to_srgb(image: Image.Image) -> Image.Image:
    """The image in RGB or RGBA, its colours converted from its ICC profile (if any) to sRGB, so it looks the same
    once the profile is gone."""
    alpha = image.has_transparency_data
    profile = image.info.get("icc_profile")
    if image.mode not in ("RGB", "RGBA", "CMYK", "L") or (alpha and image.mode not in ("RGBA",)):
        image = image.convert("RGBA" if alpha else "RGB")
    if profile:
        colour = image.convert("RGB") if image.mode == "RGBA" else image
        try:
            converted = ImageCms.profileToProfile(
                colour, ImageCms.ImageCmsProfile(io.BytesIO(profile)), SRGB, outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # an unreadable profile: keep the colours as they are
        if converted is not None:
            if image.mode == "RGBA":
                converted.putalpha(image.getchannel("A"))
            image = converted
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    return image


def stored_format(source_format: str, image: Image.Image) -> ImageFormat:
    """What the image is stored as: what it is, except WebP (Outlook and older Apple Mail can't show it), which
    becomes PNG if it has transparency, else JPEG."""
    if source_format == "WEBP":
        return ImageFormat.PNG if image.mode == "RGBA" else ImageFormat.JPEG
    return {"PNG": ImageFormat.PNG, "JPEG": ImageFormat.JPEG, "GIF": ImageFormat.GIF}[source_format]


def fit_width(image: Image.Image, width: int) -> Image.Image:
    """The image scaled down to `width` pixels wide (never up), keeping its proportions."""
    if image.width <= width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def encode(image: Image.Image, image_format: ImageFormat) -> bytes:
    """The pixels encoded afresh, with no metadata of any kind."""
    output = io.BytesIO()
    # A copy whose info is emptied: the encoders fall back to it for an ICC profile, EXIF and comments.
    image = image.convert("RGB") if image_format is ImageFormat.JPEG else image.copy()
    image.info = {}
    if image_format is ImageFormat.JPEG:
        image.save(output, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    elif image_format is ImageFormat.PNG:
        image.save(output, "PNG", optimize=True)
    else:
        image.save(output, "GIF", optimize=True)
    return output.getvalue()
