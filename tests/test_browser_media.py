"""The media library in a real browser: an editor uploads a photo through the form, gives it alt text, inserts it into
a campaign with the compose page's picker, previews it, and sends a test; the mail in the SMTP sink shows the image
from our own address, and that address serves it. Each page is checked with axe-core (WCAG 2.2 A/AA), must not scroll
sideways, and is saved as a screenshot under /tmp/shots-media/ for a person to look at.

BASE_URL (https://lists.uscuk.test) is not a host the browser can reach: requests for its /media/ addresses are
answered by the live server, as a proxy in front of it would, so the preview really loads the image.
"""

import re
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, create_editor, sign_in_editor
from tests.media_support import jpeg_with_gps, open_image
from uscmail.campaigns.models import Campaign
from uscmail.media.models import MediaImage

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "shots-media"
BASE_URL = "https://lists.uscuk.test"
ALT = "Supporters with a banner outside the embassy [March]"


def serve_base_url_from(live_server_url: str):
    """A route handler answering BASE_URL's requests from the live server."""

    def handle(route):
        path = urlsplit(route.request.url).path
        with urllib.request.urlopen(live_server_url + path, timeout=10) as answer:  # noqa: S310 - our live server
            route.fulfill(status=answer.status, headers=dict(answer.headers), body=answer.read())

    return handle


@pytest.mark.parametrize(("scheme", "viewport"), [("light", "desktop"), ("dark", "phone")])
def test_upload_pick_preview_and_send_an_image(visit, live_server, db, worker, smtp_sink, tmp_path, scheme, viewport):
    secret = create_editor()
    photo = tmp_path / "IMG_2041.jpg"
    photo.write_bytes(jpeg_with_gps(size=(1600, 1000)))
    browser_visit = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    browser_visit.context.route(f"{BASE_URL}/media/**", serve_base_url_from(live_server.url))
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, "media")
    sign_in_editor(page, secret)

    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Media").click()
    inspect("library-empty", "Media library")
    page.get_by_label("Image file").set_input_files(str(photo))
    page.get_by_label("Alt text").fill("   ")  # the browser asks for something; the server wants words
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("alert")).to_contain_text("Please describe the image")
    inspect("library-error", "Media library")
    page.get_by_label("Image file").set_input_files(str(photo))
    page.get_by_label("Alt text").fill(ALT)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("is in the library (600 × 375 pixels in mail)")
    thumbnail = page.locator("#media-images img").first
    expect(thumbnail).to_be_visible()
    assert page.evaluate("(image) => image.naturalWidth", thumbnail.element_handle()) == 600
    inspect("library", "Media library")
    page.get_by_role("link", name=ALT).click()
    inspect("image", ALT)
    page.get_by_role("link", name="Delete this image…").click()
    inspect("confirm-delete", "Delete this image?")

    image = db.session.scalar(sa.select(MediaImage))
    db.session.rollback()
    url = f"{BASE_URL}/media/{image.public_id}.jpg"
    page.goto("/organisers/campaigns/new")
    page.get_by_label("Subject").fill("Pictures from Portland Place")
    page.get_by_label("Newsletter").check()
    body = page.get_by_label("Body", exact=True)
    body.fill("Dear {{ subscriber.name }},\n\nThank you for coming.\n\nSee you on the 5th.")
    body.evaluate(
        "(area) => { const at = area.value.indexOf('See you'); area.focus(); area.setSelectionRange(at, at); }"
    )
    page.get_by_text("Insert an image from the media library").click()
    page.get_by_role("button", name=f"Insert “{ALT}”").click()
    expect(page.locator(".media-picker-status")).to_contain_text("Inserted")
    markdown = f"![Supporters with a banner outside the embassy \\[March\\]]({url})"
    assert (
        body.input_value()
        == f"Dear {{{{ subscriber.name }}}},\n\nThank you for coming.\n\n{markdown}See you on the 5th."
    )
    body.press("Enter")
    body.press("Enter")
    preview_image = page.frame_locator("#preview-frame").locator(f'img[src="{url}"]')
    expect(preview_image).to_have_attribute("alt", ALT)
    expect(preview_image).to_have_attribute("width", "552")
    preview_image.evaluate("(image) => image.decode()")
    assert preview_image.evaluate("(image) => image.naturalWidth") == 600
    inspect("compose-picker", "New campaign")
    page.get_by_role("button", name="Save draft").click()
    # The page being left may still show its own status lines (the picker's, the autosave's) for a moment.
    expect(page.get_by_role("status").filter(has_text="saved")).to_contain_text("The campaign is saved.")

    page.get_by_label("Send a test copy to").fill("tester@example.org")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status").filter(has_text="Test sent")).to_contain_text("Test sent to 1 address")
    [mail] = smtp_sink.wait_for("tester@example.org")
    [tag] = re.findall(r"<img[^>]*>", mail.html())
    assert f'src="{url}"' in tag and f'alt="{ALT}"' in tag and 'width="552"' in tag and 'height="345"' in tag
    assert f"{BASE_URL}/media/{image.public_id}-2x.jpg 2x" in tag
    assert f"[{ALT}]" in mail.text()
    served = urllib.request.urlopen(live_server.url + urlsplit(url).path, timeout=10)  # noqa: S310 - our live server
    assert served.headers["Content-Type"] == "image/jpeg"
    stored = open_image(served.read())
    assert stored.size == (600, 375) and len(stored.getexif()) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 1

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert [
        request for request in browser_visit.foreign_requests() if not request.startswith(f"{BASE_URL}/media/")
    ] == []
    assert browser_visit.server_errors == []
