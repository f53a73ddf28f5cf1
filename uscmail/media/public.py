"""The library's images, served from our own domain at one address per rendition, the same for every recipient: no
per-recipient URL, no cookie, nothing recorded. The files never change under a name, so they are cached for a year.
"""

from flask import Blueprint, Response, abort, request

from . import services
from .storage import FILE_NAME, media_store

bp = Blueprint("media_files", __name__)

ONE_YEAR = 365 * 24 * 3600


@bp.get("/media/<name>")
def image_file(name: str):
    """A rendition's bytes with its own Content-Type (decided when it was decoded), or 404."""
    if not FILE_NAME.match(name):
        abort(404)
    public_id, _, _ = name.partition(".")
    image = services.image_by_public_id(public_id.removesuffix("-2x"))
    if image is None or name not in image.file_names():
        abort(404)
    data = media_store().get(name)
    if data is None:
        abort(404)
    response = Response(data, mimetype=image.format.content_type)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    # An image is never a document: nothing in it may run, even opened on its own.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Content-Disposition"] = "inline"
    response.set_etag(name)
    return response.make_conditional(request)
