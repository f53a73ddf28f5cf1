"""Images for the media library tests, made with Pillow in memory: photos with EXIF (GPS, orientation), PNGs with
text chunks, GIFs under other names, files that only pretend to be images, and decompression bombs."""

import io
import struct
import zlib

from PIL import Image, PngImagePlugin

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_with_gps(size=(80, 40), orientation: int | None = None) -> bytes:
    """A JPEG whose EXIF holds a GPS position (Portland Place), a camera model, and optionally an orientation.
    Its left half is red and its right half blue, so a rotation shows."""
    image = Image.new("RGB", size, "red")
    image.paste("blue", (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0110] = "Secret Camera 3000"
    if orientation:
        exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 31.0, 12.0), "W", (0.0, 8.0, 45.0)
    output = io.BytesIO()
    image.save(output, "JPEG", exif=exif, quality=90)
    return output.getvalue()


def png_with_text(size=(40, 30)) -> bytes:
    """A PNG with tEXt, iTXt and an XMP packet."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone@example.org")
    info.add_itxt("Comment", "taken at home, 12 Secret Street", lang="en")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPSLatitude 51.52</x:xmpmeta>")
    output = io.BytesIO()
    Image.new("RGB", size, "green").save(output, "PNG", pnginfo=info)
    return output.getvalue()


def image_bytes(image_format: str, size=(40, 30), mode="RGB", colour="purple") -> bytes:
    """A plain image in the given Pillow format."""
    output = io.BytesIO()
    Image.new(mode, size, colour).save(output, image_format)
    return output.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares an enormous size (a few hundred bytes that would decode to gigabytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def decompression_bomb(side: int = 7000) -> bytes:
    """A real, valid PNG of side × side pixels (49 million for 7000) that compresses to some tens of kilobytes."""
    output = io.BytesIO()
    Image.new("L", (side, side), 0).save(output, "PNG", optimize=False)
    return output.getvalue()


HTML_PAGE = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def open_image(data: bytes) -> Image.Image:
    """Pillow's reading of stored bytes."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
