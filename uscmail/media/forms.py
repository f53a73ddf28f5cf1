"""The media library's forms: upload an image with its alt text, change the alt text, confirm a deletion."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import StringField


class UploadForm(FlaskForm):
    """An image file and its alt text (both checked by the services, which say what is wrong)."""

    image = FileField("Image file")
    alt_text = StringField("Alt text")


class AltTextForm(FlaskForm):
    """An image's alt text."""

    alt_text = StringField("Alt text")


class DeleteForm(FlaskForm):
    """The confirmation of a deletion: nothing but the CSRF token."""
