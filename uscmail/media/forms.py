"""The media library's forms: upload an image with its alt text, change the alt text, confirm a deletion."""

from flask_wtf.file import FileField
from wtforms import StringField

from ..forms import Form


class UploadForm(Form):
    """An image file and its alt text (both checked by the services, which say what is wrong)."""

    image = FileField("Image file")
    alt_text = StringField("Alt text")


class AltTextForm(Form):
    """An image's alt text."""

    alt_text = StringField("Alt text")


class DeleteForm(Form):
    """The confirmation of a deletion: nothing but the CSRF token."""
