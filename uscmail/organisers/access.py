"""Who is signed in, and role checks for organiser pages and the API."""

from collections.abc import Callable
from functools import wraps

from flask import abort, g, redirect, request, session, url_for

from . import services
from .models import Organiser, OrganiserSession, Role, SessionStage

SESSION_KEY = "organiser_session"


def load_current_session() -> None:
    """before_request: find the organiser session named by the cookie, once per request."""
    g.organiser_session = services.load_session(session.get(SESSION_KEY))


def current_session() -> OrganiserSession | None:
    """The organiser session of this request, at any stage."""
    if "organiser_session" not in g:
        load_current_session()
    return g.organiser_session


def current_organiser() -> Organiser | None:
    """The fully signed-in organiser (password and second factor), or None."""
    row = current_session()
    return row.organiser if row is not None and row.stage is SessionStage.COMPLETE else None


def sign_in_redirect():
    """To the sign-in page, coming back to this page afterwards if it was a GET."""
    return redirect(url_for("organisers.login", next=request.full_path if request.method == "GET" else None))


def role_required(role: Role) -> Callable:
    """Decorator: the page needs a signed-in organiser whose role includes `role` (403 otherwise)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            organiser = current_organiser()
            if organiser is None:
                return sign_in_redirect()
            if not organiser.role.includes(role):
                abort(403)
            g.organiser = organiser
            return view(*args, **kwargs)

        return wrapped

    return decorator
