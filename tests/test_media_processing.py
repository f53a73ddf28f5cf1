"""The media library's image processing: what Pillow makes of uploads, honest and hostile, and the local store."""

import io

import pytest
from PIL import Image

from tests.media_support import (
    GPS_IFD,
    HTML_PAGE,
    decompression_bomb,
    image_bytes,
    jpeg_with_gps,
    open_image,
    png_declaring,
    png_with_text,
)
from uscmail.media.models import ImageFormat
from uscmail.media.processing import ImageRefused, ImageTooLarge, process_upload
from uscmail.media.storage import LocalMediaStore

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000


def process(data: bytes, **limits):
    return process_upload(data, limits.get("max_bytes", MAX_BYTES), limits.get("max_pixels", MAX_PIXELS))


def test_a_photo_loses_its_exif_gps_position_and_camera():
    upload = jpeg_with_gps()
    assert open_image(upload).getexif().get_ifd(GPS_IFD)  # the test photo really carries a position
    processed = process(upload)
    stored = open_image(processed.mail)
    assert processed.format is ImageFormat.JPEG and stored.format == "JPEG"
    assert len(stored.getexif()) == 0
    assert not set(stored.info) & {"exif", "icc_profile", "xmp", "comment", "photoshop"}
    assert b"Exif" not in processed.mail and b"Secret Camera" not in processed.mail and b"GPS" not in processed.mail


def test_exif_orientation_is_applied_before_it_is_dropped():
    # Orientation 6: the camera was turned; the picture is shown rotated 90° clockwise. 80 × 40 becomes 40 × 80,
    # and the red left half ends up on top.
    processed = process(jpeg_with_gps(size=(80, 40), orientation=6))
    stored = open_image(processed.mail).convert("RGB")
    assert (processed.width, processed.height) == stored.size == (40, 80)
    red, green, blue = stored.getpixel((20, 10))
    assert red > 200 and blue < 60
    red, green, blue = stored.getpixel((20, 70))
    assert blue > 200 and red < 60
    assert len(open_image(processed.mail).getexif()) == 0


def test_a_png_loses_its_text_chunks_and_xmp():
    upload = png_with_text()
    assert "Author" in open_image(upload).info
    processed = process(upload)
    stored = open_image(processed.mail)
    assert processed.format is ImageFormat.PNG and stored.format == "PNG"
    assert not set(stored.info) - {"dpi", "gamma"}, stored.info
    for secret in (b"someone@example.org", b"Secret Street", b"GPSLatitude", b"tEXt", b"iTXt"):
        assert secret not in processed.mail


def test_an_icc_profile_is_converted_to_srgb_and_not_kept():
    from PIL import ImageCms

    output = io.BytesIO()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.new("RGB", (20, 20), (200, 100, 50)).save(output, "JPEG", icc_profile=profile)
    processed = process(output.getvalue())
    assert "icc_profile" not in open_image(processed.mail).info


def test_a_gif_named_png_is_stored_as_the_gif_it_is():
    upload = image_bytes("GIF")
    processed = process(upload)  # the name and the browser's type never reach the processing
    assert processed.format is ImageFormat.GIF
    assert processed.format.content_type == "image/gif" and processed.format.extension == "gif"
    assert open_image(processed.mail).format == "GIF"


def test_an_animated_gif_keeps_its_first_frame():
    frames = [Image.new("RGB", (30, 20), colour) for colour in ("red", "blue", "green")]
    output = io.BytesIO()
    frames[0].save(output, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    stored = open_image(process(output.getvalue()).mail)
    assert getattr(stored, "n_frames", 1) == 1
    red, green, blue = stored.convert("RGB").getpixel((5, 5))
    assert red > 200 and blue < 60


def test_webp_is_stored_as_jpeg_or_as_png_when_transparent():
    assert process(image_bytes("WEBP")).format is ImageFormat.JPEG
    transparent = process(image_bytes("WEBP", mode="RGBA", colour=(0, 0, 255, 0)))
    assert transparent.format is ImageFormat.PNG
    assert open_image(transparent.mail).mode == "RGBA"


def test_wide_images_get_a_mail_rendition_and_a_high_density_one():
    processed = process(image_bytes("PNG", size=(2400, 1200)))
    assert (processed.width, processed.height) == (600, 300)
    assert open_image(processed.mail).size == (600, 300)
    assert open_image(processed.high_density).size == (1200, 600)
    narrow = process(image_bytes("PNG", size=(500, 100)))
    assert (narrow.width, narrow.height) == (500, 100) and narrow.high_density is None


@pytest.mark.parametrize(
    "upload",
    [HTML_PAGE, b"GIF89a" + HTML_PAGE, b"%PDF-1.7\n" + b"x" * 100, b"\x89PNG\r\n\x1a\n<script>alert(1)</script>"],
    ids=["html", "html-behind-a-gif-signature", "pdf", "html-behind-a-png-signature"],
)
def test_files_that_are_not_images_are_refused(upload):
    with pytest.raises(ImageRefused, match="not an image we can read|damaged or incomplete"):
        process(upload)


def test_a_polyglot_image_keeps_its_picture_and_loses_the_page_hidden_after_it():
    upload = image_bytes("PNG") + HTML_PAGE
    processed = process(upload)
    assert processed.format is ImageFormat.PNG
    assert b"<script>" not in processed.mail and b"html" not in processed.mail


def test_a_truncated_image_is_refused():
    with pytest.raises(ImageRefused, match="damaged or incomplete"):
        process(jpeg_with_gps(size=(400, 300))[:600])


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    bomb = decompression_bomb(7000)
    assert len(bomb) < MAX_BYTES
    with pytest.raises(ImageTooLarge, match="too many pixels") as refused:
        process(bomb)
    assert refused.value.status == 413


@pytest.mark.parametrize("size", [(100_000, 100_000), (2**31 - 1, 2**31 - 1), (1, 2**31 - 1)])
def test_a_huge_declared_size_is_refused(size):
    with pytest.raises(ImageTooLarge, match="too many pixels"):
        process(png_declaring(*size))


def test_too_many_bytes_and_empty_files_are_refused():
    with pytest.raises(ImageTooLarge, match=r"That file is 0\.1\d* MB; images may be at most 0\.00977 MB") as refused:
        process(image_bytes("BMP", size=(200, 200)), max_bytes=10 * 1024)
    assert refused.value.status == 413
    with pytest.raises(ImageRefused, match="empty"):
        process(b"")


def test_formats_other_than_the_four_are_refused_even_when_pillow_could_read_them():
    for other in ("BMP", "TIFF", "ICO"):
        with pytest.raises(ImageRefused, match="not an image we can read"):
            process(image_bytes(other))


def test_the_local_store_writes_reads_and_deletes_only_its_own_names(tmp_path):
    store = LocalMediaStore(tmp_path / "media")
    store.put("abcdefghijklmnopqrstuv.png", b"png bytes", "image/png")
    assert store.get("abcdefghijklmnopqrstuv.png") == b"png bytes"
    assert [path.name for path in (tmp_path / "media").iterdir()] == ["abcdefghijklmnopqrstuv.png"]
    store.delete("abcdefghijklmnopqrstuv.png")
    store.delete("abcdefghijklmnopqrstuv.png")  # gone already: nothing happens
    assert store.get("abcdefghijklmnopqrstuv.png") is None
    for hostile in ("../../etc/passwd", "x.png", "abcdefghijklmnopqrstuv.html", "abcdefghijklmnopqrstuv.png/..", ""):
        with pytest.raises(ValueError, match="not a media file name"):
            store.get(hostile)
