"""Library images in campaign mail: recognising our own image addresses (allowed in mail, unlike other sites'),
and giving each library image its size, so it takes its place before it loads and fits a phone's screen (the mail
layout's CSS adds max-width: 100%; height: auto), and its high-density rendition where mail clients use srcset.
"""

import html
import re
from urllib.parse import urlsplit

from flask import current_app

from . import services

# The mail layout's content column: 600 px less 24 px of padding on each side. Wider images are shown this wide.
CONTENT_WIDTH = 552
FILE_PATH = re.compile(r"^/media/([A-Za-z0-9_-]{16,32})(-2x)?\.(png|jpg|gif)$")
IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
SRC = re.compile(r'\ssrc="([^"]*)"')
WIDTH = re.compile(r'\swidth="\s*(\d{1,5})\s*"')
SIZE_ATTRIBUTES = re.compile(r'\s(?:width|height|srcset)="[^"]*"')


def site_origin() -> str:
    """Our own site's origin (BASE_URL's scheme, host and port), where library images are served from: mail
    documents shown in our pages allow images from it, as http in development."""
    base = urlsplit(current_app.config["BASE_URL"])
    return f"{base.scheme}://{base.netloc}"


def library_public_id(src: str) -> str | None:
    """The public id of the library image at this address on our own site (BASE_URL), or None for any other."""
    base = urlsplit(current_app.config["BASE_URL"])
    try:
        address = urlsplit(src.strip())
    except ValueError:
        return None
    if (address.scheme.lower(), address.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
        return None
    if address.query or address.fragment or address.username:
        return None
    prefix = base.path.rstrip("/")
    if not address.path.startswith(prefix + "/media/"):
        return None
    match = FILE_PATH.match(address.path[len(prefix) :])
    return match[1] if match else None


def library_ids_in(fragment: str) -> set[str]:
    """The public ids of the library images an HTML fragment shows."""
    found = set()
    for tag in IMG_TAG.findall(fragment):
        src = SRC.search(tag)
        public_id = library_public_id(html.unescape(src[1])) if src else None
        if public_id:
            found.add(public_id)
    return found


def fit_library_images(fragment: str) -> str:
    """Sanitised HTML with each library image given width and height (its own, or the organiser's smaller width, at
    most CONTENT_WIDTH) and a srcset naming its high-density rendition. Other images are left as they are."""
    images = services.images_by_public_id(library_ids_in(fragment))
    if not images:
        return fragment

    def fit(match: re.Match) -> str:
        tag = match[0]
        src = SRC.search(tag)
        image = images.get(library_public_id(html.unescape(src[1])) or "") if src else None
        if image is None:
            return tag
        asked = WIDTH.search(tag)
        width = min(image.width, CONTENT_WIDTH, int(asked[1]) if asked and int(asked[1]) > 0 else image.width)
        height = max(1, round(image.height * width / image.width))
        attributes = f' width="{width}" height="{height}"'
        if image.high_density:
            attributes += f' srcset="{html.escape(services.image_url(image, high_density=True))} 2x"'
        tag = SIZE_ATTRIBUTES.sub("", tag)
        end = -2 if tag.endswith("/>") else -1
        return tag[:end].rstrip() + attributes + tag[end:]

    return IMG_TAG.sub(fit, fragment)
