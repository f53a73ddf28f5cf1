"""Helpers for the signup tests (the form and the public API): addresses brought into each state, browsers from
chosen IP addresses, and snapshots of everything stored, to show a request changed nothing or revealed nothing."""

import re

import sqlalchemy as sa
from flask import g
from flask.testing import FlaskClient

from tests.factories import mailing_list
from uscmail.models import ConsentMethod, StatusReason, Subscriber
from uscmail.subscriptions import services

LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")
WORDING_VERSION = "2026-11-27"
STATES = ("new", "pending", "confirmed", "unsubscribed", "suppressed")


class Browser(FlaskClient):
    """A test client whose every request starts without a cached CSRF token, as each real request does.

    The db fixture keeps one app context pushed, so Flask-WTF's token cached in `g` would otherwise leak from one
    browser's session into the next browser's form.
    """

    def open(self, *args, **kwargs):
        g.pop("csrf_token", None)
        return super().open(*args, **kwargs)


def client_from(app, ip: str) -> Browser:
    """A browser with its own cookie jar whose requests come from this IP address."""
    browser = Browser(app, app.response_class, use_cookies=True)
    browser.environ_base["REMOTE_ADDR"] = ip
    return browser


def put_in_state(db, email: str, state: str, name: str | None = None) -> None:
    """Bring an address into a state through the services, as earlier visits would have: no mail is sent."""
    if state == "new":
        return
    newsletter = mailing_list("newsletter")
    services.request_subscription(email, name, [newsletter], ConsentMethod.FORM, WORDING_VERSION)
    subscriber = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if state != "pending":
        services.confirm_subscription(subscriber)
    if state == "unsubscribed":
        services.unsubscribe(subscriber.id, None, StatusReason.ONE_CLICK)
    if state == "suppressed":
        services.erase_subscriber(subscriber)
    db.session.commit()


def snapshot(db) -> dict[str, list[tuple]]:
    """Every row of every table, to show that a request changed nothing."""
    tables = {
        table.name: sorted((tuple(row) for row in db.session.execute(sa.select(table))), key=repr)
        for table in db.metadata.sorted_tables
    }
    db.session.rollback()
    return tables


def subscriber_row(db, email: str) -> Subscriber | None:
    """The subscriber with this address as committed now, or None."""
    db.session.rollback()
    return db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))


def stored_strings(db) -> list[tuple[str, str]]:
    """Every string value in every table, with its table's name."""
    stored = [
        (table.name, value)
        for table in db.metadata.sorted_tables
        for row in db.session.execute(sa.select(table))
        for value in row
        if isinstance(value, str)
    ]
    db.session.rollback()
    return stored


def whole_response(response) -> tuple:
    """Status, every header and the body bytes: what an observer of the response can see."""
    return response.status_code, sorted(response.headers.items()), response.get_data()
