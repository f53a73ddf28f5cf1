"""Forms of the supporter journey (CSRF-protected by Flask-WTF)."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectMultipleField,
    StringField,
    SubmitField,
    widgets,
)

from ..forms import Form


class CheckboxListField(SelectMultipleField):
    """A multiple choice rendered as checkboxes."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def pre_validate(self, form):
        # Unknown choices are reported by the service with a clearer message.
        pass


class SignupForm(Form):
    """Email, optional name, lists; plus a honeypot and a signed start time against bots."""

    # templates/subscriptions/subscribe.html writes the inputs (their attributes are there), not WTForms.
    email = StringField(_l("Email address"))
    name = StringField(_l("Name (optional)"))
    lists = CheckboxListField(_l("Lists"))
    consent_version = HiddenField()
    # The language the form was shown in: the new subscriber's language, and that of their mail.
    locale = HiddenField()
    started = HiddenField()
    # Hidden from people by CSS and aria-hidden; bots fill it in.
    website = StringField(_l("Leave this field empty"))
    submit = SubmitField(_l("Subscribe"))


class HumanCheckForm(Form):
    """The one button of the "confirm you are a person" page; the signup rides along in a signed token."""

    signup = HiddenField()
    submit = SubmitField(_l("Yes, I'm a person: subscribe me"))


class PreferencesForm(Form):
    """Name, language of mail and list choices in the preference centre."""

    # templates/subscriptions/preferences.html writes the inputs (their attributes are there), not WTForms.
    name = StringField(_l("Name (optional)"))
    # Checked by the view (routes.form_locale), which says what is wrong in words.
    locale = RadioField(_l("Language of our emails"), choices=[], validate_choice=False)
    lists = CheckboxListField(_l("Lists"), coerce=int)
    submit = SubmitField(_l("Save my preferences"))


class ConfirmActionForm(Form):
    """A single button that performs a POST action (confirm, leave everything, erase)."""

    confirm = BooleanField()
    submit = SubmitField()
