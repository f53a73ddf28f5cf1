"""Forms of the organisers' pages. Values are checked by the services; these forms carry the CSRF token."""

from wtforms import BooleanField, HiddenField, StringField, TextAreaField

from ..forms import Form


class ActionForm(Form):
    """A button that needs nothing but the CSRF token (unsubscribe from all, archive, …)."""


class NameForm(Form):
    """A subscriber's name."""

    name = StringField("Name", render_kw={"maxlength": 200, "autocomplete": "off"})


class SubscriptionForm(Form):
    """Subscribe to or unsubscribe from one list."""

    list_id = HiddenField()
    subscribed = HiddenField()


class EraseForm(Form):
    """Erasing needs an explicit tick."""

    confirm = BooleanField("Yes, erase this subscriber's data for good")


SLUG_PATTERN = r"[a-z0-9](?:[a-z0-9\-]{0,62}[a-z0-9])?"


class ListForm(Form):
    """A list's short name (creation only), name, description and visibility on the signup form."""

    # Browsers compile `pattern` with the RegExp `v` flag, where a hyphen inside a class must be escaped (`[a-z0-9-]`
    # is a syntax error there and the pattern is ignored). The same rule as lists.SLUG, which the server applies.
    slug = StringField("Short name", render_kw={"maxlength": 64, "autocomplete": "off", "pattern": SLUG_PATTERN})
    name = StringField("Name", render_kw={"maxlength": 200, "autocomplete": "off"})
    description = TextAreaField("Description", render_kw={"maxlength": 2000, "rows": 4})
    public = BooleanField("Public: offered on the signup form")
