"""The supporter pages in a real browser: the journey, accessibility, phones, keyboards, privacy, screenshots.

Headless Chromium drives the app served over HTTP by a live server thread. Mail goes through the real Celery worker to
the SMTP sink; its links point at BASE_URL, so their paths are opened on the live server. Screenshots and rendered
mails land in test-artifacts/ for a person to look at.
"""

import re
import urllib.request

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import ARTIFACTS, SCREENSHOTS, VIEWPORTS, axe_violations, heading, horizontal_overflow
from tests.conftest import wait_for_signups
from uscmail.models import MailingList, StatusReason, Subscriber, Subscription, SubscriptionStatus

pytestmark = pytest.mark.browser

PUBLIC_ORIGIN = "https://lists.uscuk.test"
LINK = re.compile(r"https://lists\.uscuk\.test(/\S+)")
SCREENSHOT_PAGES = {"subscribe", "subscribe-error", "thanks", "confirm", "preferences", "unsubscribe"}

# What the browser sees of the element in focus (or under the pointer): its outline, its colours, and the first
# painted background just outside its outline, where a focus ring has to stand out.
STYLE_OF_ELEMENT = """
(element) => {
  const transparent = (color) => color === "rgba(0, 0, 0, 0)" || color === "transparent";
  const backgroundAt = (x, y, skip) => {
    for (const node of document.elementsFromPoint(x, y)) {
      if (node === skip) continue;
      const color = getComputedStyle(node).backgroundColor;
      if (!transparent(color)) return color;
    }
    return getComputedStyle(document.documentElement).backgroundColor;
  };
  const style = getComputedStyle(element);
  const box = element.getBoundingClientRect();
  const ring = parseFloat(style.outlineOffset || "0") + parseFloat(style.outlineWidth || "0") + 2;
  const middle = box.top + box.height / 2;
  return {
    description: element.id || element.getAttribute("href") || element.textContent.trim(),
    outlineStyle: style.outlineStyle,
    outlineWidth: parseFloat(style.outlineWidth || "0"),
    outlineColor: style.outlineColor,
    color: style.color,
    background: transparent(style.backgroundColor)
      ? backgroundAt(box.left + box.width / 2, middle, element)
      : style.backgroundColor,
    around: backgroundAt(Math.max(0, box.left - ring), middle, element),
    onScreen: box.right > 0 && box.bottom > 0 && box.left < window.innerWidth && box.top < window.innerHeight,
  };
}
"""


def sign_up(page, email: str, name: str, lists=("Newsletter",)) -> None:
    """Fill in and send the signup form the way a person does."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Name (optional)").fill(name)
    for label in lists:
        page.get_by_label(label, exact=True).check()
    page.get_by_role("button", name="Subscribe").click()


def path_of(url: str) -> str:
    """The path of a link in mail, to be opened on the live server."""
    assert url.startswith(PUBLIC_ORIGIN + "/"), url
    return url.removeprefix(PUBLIC_ORIGIN)


def confirmation_path(smtp_sink, email: str) -> str:
    """Wait for the confirmation mail to an address and return the path of its link."""
    confirmation = smtp_sink.wait_for(email)[0]
    assert confirmation.message["Subject"] == "Please confirm your subscription to USC-UK"
    return LINK.search(confirmation.text()).group(1)


def subscriptions_of(db, email: str) -> dict[str, tuple[SubscriptionStatus, StatusReason]]:
    """List slug -> (status, reason) for an address, read from the database the live server writes to."""
    rows = db.session.execute(
        sa.select(MailingList.slug, Subscription.status, Subscription.status_reason)
        .join(Subscription, Subscription.list_id == MailingList.id)
        .join(Subscriber)
        .where(Subscriber.email == email)
    ).all()
    db.session.rollback()
    return {slug: (status, reason) for slug, status, reason in rows}


def one_click_unsubscribe(url: str) -> tuple[int, str, str]:
    """POST as Gmail does for RFC 8058: no cookie, no token, form-encoded body. Returns status, final URL, page."""
    request = urllib.request.Request(
        url,
        data=b"List-Unsubscribe=One-Click",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.geturl(), response.read().decode()


def luminance(css_color: str) -> float:
    """WCAG relative luminance of a computed CSS colour such as "rgb(7, 89, 133)"."""
    red, green, blue = (float(part) / 255 for part in re.findall(r"[\d.]+", css_color)[:3])
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two computed CSS colours."""
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def style_of(locator) -> dict:
    """Outline, colours and surrounding background of the element a locator points to."""
    return locator.evaluate(STYLE_OF_ELEMENT)


def focus_ring_problem(page) -> str | None:
    """Why the focused element's focus is hard to see, or None if it has a clear ring (WCAG 2.4.7 and 1.4.11)."""
    focused = style_of(page.locator(":focus"))
    name = focused["description"]
    if not focused["onScreen"]:
        return f"{name}: focused but off screen"
    if focused["outlineStyle"] == "none" or focused["outlineWidth"] < 2:
        return f"{name}: no visible focus outline ({focused['outlineStyle']} {focused['outlineWidth']}px)"
    ratio = contrast(focused["outlineColor"], focused["around"])
    if ratio < 3:
        return f"{name}: focus outline {focused['outlineColor']} on {focused['around']} has contrast {ratio:.2f} < 3"
    return None


def hover_contrast(page, locator) -> float:
    """Contrast of a button's text with its background while the pointer is over it."""
    locator.hover()
    style = style_of(locator)
    return contrast(style["color"], style["background"])


def test_journey_in_the_browser(visit, worker, smtp_sink, db):
    """Start page -> form -> inbox -> confirm -> welcome mail -> Gmail's one-click POST -> unsubscribe and prefs."""
    browser_visit = visit()
    page = browser_visit.page
    origin = browser_visit.origin
    page.goto("/")
    expect(heading(page)).to_have_text("Stay in touch with USC-UK")
    page.get_by_role("link", name="Subscribe").click()
    expect(page).to_have_url(f"{origin}/subscribe")

    sign_up(page, "Amina.Browser@Example.org", "Amina")
    expect(page).to_have_url(f"{origin}/subscribe/thanks")
    expect(heading(page)).to_have_text("Check your inbox")
    address = "amina.browser@example.org"
    wait_for_signups(db)
    assert subscriptions_of(db, address) == {"newsletter": (SubscriptionStatus.PENDING, StatusReason.SIGNUP_FORM)}

    confirm_path = confirmation_path(smtp_sink, address)
    assert confirm_path.startswith("/confirm/")
    page.goto(confirm_path)
    expect(heading(page)).to_have_text("Confirm your subscription")
    expect(page.locator("main li")).to_have_text(["Newsletter"])
    assert subscriptions_of(db, address)["newsletter"][0] is SubscriptionStatus.PENDING
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(heading(page)).to_have_text("You're subscribed")
    expect(page.get_by_text("A welcome email is on its way.")).to_be_visible()
    assert subscriptions_of(db, address) == {
        "newsletter": (SubscriptionStatus.CONFIRMED, StatusReason.CONFIRMED_BY_SUBSCRIBER)
    }

    welcome = smtp_sink.wait_for(address, count=2)[1]
    assert welcome.message["Subject"] == "Welcome to the Uyghur Solidarity Campaign UK"
    assert welcome.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_path = path_of(welcome.message["List-Unsubscribe"].strip("<>"))

    status, final_url, body = one_click_unsubscribe(origin + unsubscribe_path)
    assert (status, final_url) == (200, origin + unsubscribe_path)  # answered in place, no redirect
    assert "You have been unsubscribed" in body
    assert subscriptions_of(db, address) == {"newsletter": (SubscriptionStatus.UNSUBSCRIBED, StatusReason.ONE_CLICK)}

    # The body link leads to a page (GET changes nothing) that offers to email the preference link, never shows it.
    page.goto(unsubscribe_path)
    expect(heading(page)).to_have_text("Unsubscribe")
    expect(page.locator("main li")).to_have_text(["Newsletter"])
    expect(page.get_by_role("button", name="Unsubscribe", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Unsubscribe from everything")).to_be_visible()
    assert "/preferences/" not in page.content()
    page.get_by_role("button", name="Email me a link to my preferences").click()
    expect(heading(page)).to_have_text("Check your inbox")
    link_mail = smtp_sink.wait_for(address, count=3)[2]
    assert link_mail.message["Subject"] == "Your USC-UK preferences link"
    page.goto(path_of(re.search(r"https?://\S+/preferences/\S+", link_mail.text())[0]))
    expect(heading(page)).to_have_text("Your preferences")
    expect(page.get_by_text(f"For {address}")).to_be_visible()
    expect(page.get_by_label("Name (optional)")).to_have_value("Amina")
    expect(page.get_by_label("Newsletter", exact=True)).not_to_be_checked()
    expect(page.get_by_label("London protest reminders", exact=True)).not_to_be_checked()
    assert subscriptions_of(db, address)["newsletter"][0] is SubscriptionStatus.UNSUBSCRIBED

    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_supporter_page_is_accessible_fits_and_stays_on_our_origin(
    visit, worker, smtp_sink, db, scheme, viewport
):
    """Walk every supporter page; on each: axe-core WCAG 2.2 A/AA, no sideways scrolling, a screenshot.

    The address is long on purpose: it is shown on the preference page and must wrap on a phone.
    """
    browser_visit = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    page = browser_visit.page
    address = f"supporter.with.a.rather.long.address.{scheme}.{viewport}@a-long-campaign-domain.example.org"
    problems: dict[str, list[str]] = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def inspect(name: str, title: str) -> None:
        expect(heading(page)).to_have_text(title)
        page.wait_for_load_state("load")  # the stylesheet is in, so layout and colours are final
        found = axe_violations(page)
        overflow = horizontal_overflow(page)
        if overflow > 0:
            found.append(f"page is {overflow}px wider than the {VIEWPORTS[viewport]['width']}px viewport")
        if found:
            problems[name] = found
        if name in SCREENSHOT_PAGES:
            page.screenshot(path=SCREENSHOTS / f"{name}-{viewport}-{scheme}.png", full_page=True)

    def check_hover(name: str, button_name: str) -> None:
        ratio = hover_contrast(page, page.get_by_role("button", name=button_name, exact=True))
        if ratio < 4.5:
            problems.setdefault(name, []).append(f"'{button_name}' text contrast on hover is {ratio:.2f} < 4.5")

    page.goto("/")
    inspect("home", "Stay in touch with USC-UK")
    page.get_by_role("link", name="Subscribe").click()
    inspect("subscribe", "Subscribe to USC-UK emails")
    check_hover("subscribe", "Subscribe")

    page.get_by_label("Email address").fill("not an address")
    page.get_by_label("Newsletter", exact=True).check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("doesn't look like an email address")
    expect(page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")
    inspect("subscribe-error", "Subscribe to USC-UK emails")

    sign_up(page, address, "Gülnar")
    inspect("thanks", "Check your inbox")

    confirm_path = confirmation_path(smtp_sink, address)
    page.goto(confirm_path)
    inspect("confirm", "Confirm your subscription")
    page.get_by_role("button", name="Confirm my subscription").click()
    inspect("confirmed", "You're subscribed")

    page.get_by_role("link", name="Change your preferences").click()
    inspect("preferences", "Your preferences")
    check_hover("preferences", "Unsubscribe from everything")
    page.get_by_label("London protest reminders", exact=True).check()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    inspect("preferences-saved", "Your preferences")

    page.get_by_role("link", name="Erase my data").click()
    inspect("erase", "Erase my data")
    check_hover("erase", "Erase my data")

    welcome = smtp_sink.wait_for(address, count=2)[1]
    page.goto(path_of(welcome.message["List-Unsubscribe"].strip("<>")))
    inspect("unsubscribe", "Unsubscribe")
    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    inspect("unsubscribed", "You have been unsubscribed")
    page.get_by_role("button", name="Email me a link to my preferences").click()
    inspect("preferences-link-sent", "Check your inbox")

    link_mail = smtp_sink.wait_for(address, count=3)[2]
    page.goto(path_of(re.search(r"https?://\S+/preferences/\S+", link_mail.text())[0]))
    page.get_by_role("link", name="Erase my data").click()
    page.get_by_label("Yes, erase my data and never email me again").check()
    page.get_by_role("button", name="Erase my data").click()
    inspect("erased", "Your data is erased")

    assert page.goto(confirm_path).status == 410
    inspect("bad-link", "This link has already been used")
    assert page.goto("/no-such-page").status == 404
    inspect("not-found", "There is no page at this address.")

    report = "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in problems.items())
    assert not problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{report}"
    assert f"{browser_visit.origin}/static/style.css" in browser_visit.requests  # the log does see requests
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []


def test_the_accessibility_checks_do_report_faults(visit):
    """Guard for the checks above: as configured here, axe and the focus check flag a page with known faults."""
    page = visit().page
    page.set_content(
        "<html><head><style>a:focus { outline: none }</style></head><body><main>"
        '<p style="color: #bbb; background: #fff">Faint text</p><input type="text"><a href="#">Link</a>'
        "</main></body></html>"
    )
    found = "\n".join(axe_violations(page))
    for rule in ("color-contrast", "label", "html-has-lang"):
        assert rule in found
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert "no visible focus outline" in focus_ring_problem(page)
    page.set_viewport_size({"width": 375, "height": 600})
    page.set_content('<html lang="en"><body><p style="width: 500px">Too wide</p></body></html>')
    assert horizontal_overflow(page) > 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_signup_with_the_keyboard_alone_and_focus_always_visible(visit, worker, smtp_sink, db, scheme):
    """Tab through the form in order, Space ticks a box, Enter sends it; every stop shows a clear focus ring."""
    page = visit(color_scheme=scheme).page
    page.goto("/subscribe")
    rings = []

    def tab(expected: str) -> None:
        page.keyboard.press("Tab")
        assert style_of(page.locator(":focus"))["description"] == expected
        rings.append(focus_ring_problem(page))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab("#main")  # the skip link appears when focused
    page.screenshot(path=SCREENSHOTS / f"keyboard-skip-link-{scheme}.png")
    tab("/")
    tab("?lang=ug")  # the language switcher
    tab("?lang=zh")
    tab("email")
    page.keyboard.type(f"keyboard.{scheme}@example.org")
    tab("name")
    page.keyboard.type("Dilnur")
    tab("list-newsletter")
    page.keyboard.press("Space")
    page.screenshot(path=SCREENSHOTS / f"keyboard-checkbox-{scheme}.png")
    tab("list-london-protest-reminders")
    tab("Subscribe")  # the honeypot field is skipped
    expect(page.get_by_label("Newsletter", exact=True)).to_be_checked()
    expect(page.get_by_label("London protest reminders", exact=True)).not_to_be_checked()
    assert [problem for problem in rings if problem] == []

    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text("Check your inbox")
    address = f"keyboard.{scheme}@example.org"
    assert confirmation_path(smtp_sink, address).startswith("/confirm/")
    assert subscriptions_of(db, address) == {"newsletter": (SubscriptionStatus.PENDING, StatusReason.SIGNUP_FORM)}


def test_signup_and_confirmation_need_no_javascript(visit, worker, smtp_sink, db):
    """With JavaScript off the pages carry no scripts, and signing up and confirming still work."""
    browser_visit = visit(java_script_enabled=False)
    page = browser_visit.page
    page.goto("/subscribe")
    expect(page.locator("script")).to_have_count(0)
    sign_up(page, "no.script@example.org", "Rahima", lists=("London protest reminders",))
    expect(heading(page)).to_have_text("Check your inbox")

    page.goto(confirmation_path(smtp_sink, "no.script@example.org"))
    expect(page.locator("script")).to_have_count(0)
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(heading(page)).to_have_text("You're subscribed")
    assert subscriptions_of(db, "no.script@example.org") == {
        "london-protest-reminders": (SubscriptionStatus.CONFIRMED, StatusReason.CONFIRMED_BY_SUBSCRIBER)
    }
    smtp_sink.wait_for("no.script@example.org", count=2)  # the welcome mail went out
    assert browser_visit.foreign_requests() == []


def test_confirmation_and_welcome_mails_read_well_at_phone_and_desktop_widths(visit, worker, smtp_sink, db):
    """Render the HTML parts as a mail client would: nothing fetched, nothing sideways, the buttons readable."""
    page = visit().page
    page.goto("/subscribe")
    sign_up(page, "mail.render@example.org", "Gülnar", lists=("Newsletter", "London protest reminders"))
    confirm_path = confirmation_path(smtp_sink, "mail.render@example.org")
    page.goto(confirm_path)
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(heading(page)).to_have_text("You're subscribed")
    confirmation, welcome = smtp_sink.wait_for("mail.render@example.org", count=2)

    mail_dir = ARTIFACTS / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    mails = {
        "confirmation": (confirmation, "Confirm my subscription", PUBLIC_ORIGIN + confirm_path),
        "welcome": (welcome, "Unsubscribe", welcome.message["List-Unsubscribe"].strip("<>")),
    }
    for kind, (mail, link_text, link_url) in mails.items():
        html_file = mail_dir / f"{kind}.html"
        html_file.write_text(mail.html(), encoding="utf-8")
        for width in (375, 600):
            browser_visit = visit(viewport={"width": width, "height": 800})
            mail_page = browser_visit.page
            mail_page.route("**/*", lambda route: route.abort())  # a mail client shows what is inline, nothing more
            mail_page.set_content(html_file.read_text(encoding="utf-8"))
            expect(
                mail_page.get_by_text("Hello Gülnar,").or_(mail_page.get_by_text("Welcome, Gülnar!"))
            ).to_be_visible()
            link = mail_page.get_by_role("link", name=link_text, exact=True)
            expect(link).to_be_visible()
            expect(link).to_have_attribute("href", link_url)
            assert contrast(style_of(link)["color"], style_of(link)["background"]) >= 4.5
            assert horizontal_overflow(mail_page) == 0, f"{kind} mail scrolls sideways at {width}px"
            assert axe_violations(mail_page) == [], f"{kind} mail at {width}px"
            mail_page.screenshot(path=SCREENSHOTS / f"mail-{kind}-{width}.png", full_page=True)
            assert browser_visit.requests == [], f"{kind} mail fetched {browser_visit.requests}"
