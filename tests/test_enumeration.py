"""No enumeration: the public answers of signup (the form and the API), the "email me my preference link" request and
organiser sign-in are the same, and take the same time, for an address we know and one we do not.

Each answer is compared whole (status, headers without Date and cookie values, body without CSRF and form tokens).
Timing: ROUNDS requests per class, interleaved (known, unknown, known, ...) so a load spike on the machine hits both;
the medians may differ by no more than three standard errors of their difference (estimated from each class's own
interquartile range) plus 2 ms. On a busy CI machine, where a sign-in's timings spread over 100 ms, that allows about
60 ms; it fails for work done for one class only that costs as much as the request itself (an Argon2 verify for known
accounts only; a mail queued during the request for known addresses only).
"""

import math
import operator
import random
import re
import statistics
import time

import pytest

from tests.conftest import form_fields, isolated_client
from tests.factories import ORGANISER_PASSWORD, mailing_list, make_organiser, sign_up_subscriber
from uscmail.links import make_unsubscribe_token

ROUNDS = 40
WORDING_VERSION = "2026-11-27"
HIDDEN_VALUES = re.compile(r'(name="(?:csrf_token|started)" type="hidden" value=")[^"]+"')
# The sign-in form shows the address typed back to its sender, who knows it already.
TYPED_ADDRESS = re.compile(r'(name="email"[^>]*value=")[^"]*"')
VARYING_HEADERS = {"Date", "Set-Cookie"}


@pytest.fixture(autouse=True)
def generous_limits(app, monkeypatch):
    """Lift the per-client and per-account limits (read at request time) so every timed request is served."""
    for name in ("SIGNUP_RATE_LIMIT", "LOGIN_RATE_LIMIT", "LOGIN_FAILURES_PER_ACCOUNT", "API_RATE_LIMIT"):
        monkeypatch.setitem(app.config, name, "100000 per minute")


def observable(response) -> tuple:
    """What an onlooker can compare: status, headers (Date and cookie values dropped), body without tokens."""
    headers = sorted(
        (name, "" if name in VARYING_HEADERS else value)
        for name, value in response.headers.items()
        if name != "Content-Length"
    )
    body = HIDDEN_VALUES.sub(r'\1TOKEN"', response.get_data(as_text=True))
    body = TYPED_ADDRESS.sub(r'\1ADDRESS"', body)
    return response.status_code, headers, body


def quartiles(samples: list[float]) -> tuple[float, float]:
    """The first and third quartiles."""
    first, _, third = statistics.quantiles(samples, n=4)
    return first, third


def median_standard_error(samples: list[float]) -> float:
    """The standard error of a sample's median: 1.253 σ/√n, with σ estimated robustly as IQR/1.349."""
    first, third = quartiles(samples)
    return 1.253 * (third - first) / 1.349 / math.sqrt(len(samples))


def timing_gap(known: list[float], unknown: list[float]) -> tuple[float, float]:
    """(difference of medians, allowed difference) in seconds: three standard errors of the difference plus 2 ms.

    Each class's spread is its own, so a real difference between the classes does not widen what is allowed."""
    gap = abs(statistics.median(known) - statistics.median(unknown))
    spread = math.hypot(median_standard_error(known), median_standard_error(unknown))
    return gap, 3 * spread + 0.002


def assert_same_timing(name: str, known: list[float], unknown: list[float]) -> None:
    """Fail, with both medians, if the two classes' timings differ by more than timing_gap allows."""
    gap, allowed = timing_gap(known, unknown)
    assert gap <= allowed, (
        f"{name}: median {statistics.median(known) * 1000:.2f} ms for a known address, "
        f"{statistics.median(unknown) * 1000:.2f} ms for an unknown one (allowed gap {allowed * 1000:.2f} ms)"
    )


def time_interleaved(send_known, send_unknown) -> tuple[list[float], list[float]]:
    """ROUNDS timings of each request, alternating, after one untimed warm-up of each; every answer is checked to
    look the same as the first pair's."""
    expected = observable(send_known())
    assert observable(send_unknown()) == expected
    known, unknown = [], []
    for round_number in range(ROUNDS):
        pairs = [(send_known, known), (send_unknown, unknown)]
        for send, samples in pairs if round_number % 2 == 0 else reversed(pairs):
            started = time.perf_counter()
            response = send()
            samples.append(time.perf_counter() - started)
            assert observable(response) == expected
    return known, unknown


def test_the_timing_check_catches_work_that_doubles_a_request():
    # The rule itself, on made-up timings: jitter alone passes; a request twice as long for one class fails.
    base = [0.020 + 0.001 * (index % 7) for index in range(ROUNDS)]
    jittered = [value + 0.0005 * (index % 3) for index, value in enumerate(base)]
    gap, allowed = timing_gap(base, jittered)
    assert gap <= allowed
    gap, allowed = timing_gap(base, [value * 2 for value in base])
    assert gap > allowed


def test_the_timing_check_passes_a_noisy_machine_and_fails_work_for_one_class_only():
    # A failed CI run's sign-ins: medians near 270 ms, spread over about 100 ms between quartiles. Drawn 500 times
    # (seeded) with the same work for both classes, the rule must pass nearly all (the rule before it failed one in
    # five); with half as much work again for one class, it must fail nearly all; with twice the work, every one.
    rng = random.Random(20261207)

    def sample(scale: float) -> list[float]:
        return [scale * rng.lognormvariate(math.log(0.270), 0.28) for _ in range(ROUNDS)]

    draws = 500
    false_alarms = sum(operator.gt(*timing_gap(sample(1.0), sample(1.0))) for _ in range(draws))
    half_again = sum(operator.gt(*timing_gap(sample(1.0), sample(1.5))) for _ in range(draws))
    doubled = sum(operator.gt(*timing_gap(sample(1.0), sample(2.0))) for _ in range(draws))
    assert false_alarms <= draws * 0.01, false_alarms
    assert half_again >= draws * 0.9, half_again
    assert doubled == draws, doubled


def test_the_signup_form_answers_alike_and_as_fast_for_a_subscribed_and_a_new_address(app, db, worker):
    sign_up_subscriber("known@example.org")
    browser = isolated_client(app)
    fields = form_fields(browser.get("/subscribe").get_data(as_text=True))
    counter = iter(range(10**6))

    def post(email):
        data = {**fields, "consent_version": WORDING_VERSION, "email": email, "lists": ["newsletter"], "website": ""}
        return browser.post("/subscribe", data=data)

    first = post("known@example.org")
    assert first.status_code == 303 and first.headers["Location"].endswith("/subscribe/thanks"), first.headers
    known, unknown = time_interleaved(
        lambda: post("known@example.org"), lambda: post(f"new-{next(counter)}@example.org")
    )
    assert_same_timing("POST /subscribe", known, unknown)


def test_the_public_api_answers_alike_and_as_fast_for_a_subscribed_and_a_new_address(app, db, worker):
    sign_up_subscriber("known@example.org")
    browser = isolated_client(app)
    counter = iter(range(10**6))

    def post(email):
        body = {"email": email, "lists": ["newsletter"], "consent_version": WORDING_VERSION, "consent": True}
        return browser.post("/api/v1/public/subscribe", json=body)

    assert post("known@example.org").status_code == 202
    known, unknown = time_interleaved(
        lambda: post("known@example.org"), lambda: post(f"api-new-{next(counter)}@example.org")
    )
    assert_same_timing("POST /api/v1/public/subscribe", known, unknown)


def test_asking_for_the_preference_link_answers_alike_and_as_fast_for_a_subscriber_and_an_erased_one(app, db, worker):
    subscriber = sign_up_subscriber("known@example.org")
    newsletter_id = mailing_list("newsletter").id
    known_path = f"/unsubscribe/{make_unsubscribe_token(subscriber.public_id, [newsletter_id])}"
    # A well-signed link whose subscriber is gone (erased since the mail was sent): the nearest thing to "unknown".
    gone_path = f"/unsubscribe/{make_unsubscribe_token('0' * 32, [newsletter_id])}"
    browser = isolated_client(app)
    fields = form_fields(browser.get(known_path).get_data(as_text=True))

    def ask(path):
        return browser.post(path + "/preferences-link", data=fields)

    first = ask(known_path)
    assert first.status_code == 200 and "Check your inbox" in first.get_data(as_text=True)
    known, unknown = time_interleaved(lambda: ask(known_path), lambda: ask(gone_path))
    assert_same_timing("POST /unsubscribe/<token>/preferences-link", known, unknown)


def test_sign_in_fails_alike_and_as_slowly_for_a_known_account_and_an_unknown_address(app, db):
    make_organiser("known-organiser@example.org", commit=True)
    browser = isolated_client(app)
    fields = form_fields(browser.get("/organisers/login").get_data(as_text=True))

    def sign_in(email):
        return browser.post("/organisers/login", data={**fields, "email": email, "password": "not the password"})

    first = sign_in("known-organiser@example.org")
    assert first.status_code == 400
    # The right password does get in: the known account is a real, usable one.
    right = browser.post(
        "/organisers/login", data={**fields, "email": "known-organiser@example.org", "password": ORGANISER_PASSWORD}
    )
    assert right.status_code == 302
    browser = isolated_client(app)
    fields = form_fields(browser.get("/organisers/login").get_data(as_text=True))
    known, unknown = time_interleaved(
        lambda: sign_in("known-organiser@example.org"), lambda: sign_in("nobody-here@example.org")
    )
    assert_same_timing("POST /organisers/login", known, unknown)
