"""The media library's pages and files: who may upload, CSRF, refusals that store nothing, the images served from our
own domain, deletion and its guard, and library images in campaign mail."""

import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import form_fields
from tests.factories import make_campaign
from tests.media_support import HTML_PAGE, decompression_bomb, image_bytes, jpeg_with_gps, open_image, png_declaring
from uscmail.campaigns import render
from uscmail.campaigns.models import Campaign, CampaignStatus
from uscmail.campaigns.render import TemplateRefused, check_template
from uscmail.media.models import MediaImage
from uscmail.media.services import image_url
from uscmail.organisers.models import AuditEvent

LIBRARY = "/organisers/media"
BASE_URL = "https://lists.uscuk.test"


def upload(browser, data: bytes, alt_text="Supporters outside the embassy", filename="photo.jpg", csrf=None,
           content_type="image/jpeg"):  # fmt: skip
    """Post the upload form as a browser does, with the CSRF token of the browser's own library page."""
    if csrf is None:
        csrf = form_fields(browser.get(LIBRARY).get_data(as_text=True))["csrf_token"]
    return browser.post(
        LIBRARY,
        data={"csrf_token": csrf, "alt_text": alt_text, "image": (io.BytesIO(data), filename, content_type)},
        content_type="multipart/form-data",
    )


def images(db) -> list[MediaImage]:
    rows = list(db.session.scalars(sa.select(MediaImage).order_by(MediaImage.id)))
    db.session.rollback()
    return rows


def media_files(app) -> set[str]:
    directory = Path(app.config["MEDIA_DIR"])
    return {path.name for path in directory.iterdir()} if directory.exists() else set()


def audit_actions(db, prefix="media.") -> list[str]:
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
    ).all()
    db.session.rollback()
    return list(actions)


def test_an_editor_uploads_a_photo_and_it_is_served_clean_from_our_domain(app, db, sign_in_as):
    editor = sign_in_as("editor")
    answer = upload(editor, jpeg_with_gps(size=(1600, 800)), filename="IMG_0001.png", content_type="image/png")
    assert answer.status_code == 302
    [image] = images(db)
    assert (image.format.value, image.width, image.height, image.high_density) == ("jpeg", 600, 300, True)
    assert image.alt_text == "Supporters outside the embassy"
    assert "IMG_0001" not in image.public_id and set(image.file_names()) <= media_files(app)
    assert audit_actions(db) == ["media.upload"]
    page = editor.get(LIBRARY).get_data(as_text=True)
    assert "Supporters outside the embassy" in page and "600 × 300 px" in page and "editor@example.org" in page

    anyone = app.test_client()  # no cookie: every recipient's mail client fetches the same address
    for name, size in ((image.file_name(), (600, 300)), (image.file_name(high_density=True), (1200, 600))):
        served = anyone.get(f"/media/{name}")
        assert served.status_code == 200
        assert served.headers["Content-Type"] == "image/jpeg"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "max-age=31536000" in served.headers["Cache-Control"] and "public" in served.headers["Cache-Control"]
        assert "Set-Cookie" not in served.headers
        stored = open_image(served.data)
        assert stored.size == size and len(stored.getexif()) == 0 and b"GPS" not in served.data
    again = anyone.get(f"/media/{image.file_name()}", headers={"If-None-Match": served.headers["ETag"].replace(
        image.file_name(high_density=True), image.file_name())})  # fmt: skip
    assert again.status_code == 304


def test_a_viewer_may_look_but_not_upload(app, db, sign_in_as):
    viewer = sign_in_as("viewer")
    page = viewer.get(LIBRARY)
    assert page.status_code == 200 and "Upload an image" not in page.get_data(as_text=True)
    csrf = form_fields(viewer.get("/organisers/account").get_data(as_text=True))["csrf_token"]
    answer = upload(viewer, image_bytes("PNG"), csrf=csrf)
    assert answer.status_code == 403
    assert images(db) == [] and audit_actions(db) == []


def test_an_upload_without_a_csrf_token_or_with_another_organisers_is_refused(app, db, sign_in_as):
    first = sign_in_as("editor", "first.editor@example.org")
    second = sign_in_as("editor", "second.editor@example.org")
    first_token = form_fields(first.get(LIBRARY).get_data(as_text=True))["csrf_token"]
    second.get(LIBRARY)
    before = media_files(app)
    for token in ("", first_token, "not-a-token"):
        answer = upload(second, image_bytes("PNG"), csrf=token)
        assert answer.status_code == 400
        assert "This form expired or was sent from somewhere else" in answer.get_data(as_text=True)
    assert images(db) == [] and media_files(app) == before


@pytest.mark.parametrize(
    ("data", "filename", "status", "message"),
    [
        (HTML_PAGE, "innocent.png", 400, "not an image we can read"),
        (b"GIF89a" + HTML_PAGE, "innocent.gif", 400, "not an image we can read"),
        (decompression_bomb(7000), "bomb.png", 413, "too many pixels"),
        (png_declaring(100_000, 100_000), "huge.png", 413, "too many pixels"),
        (b"", "empty.png", 400, "That file is empty"),
    ],
    ids=["html", "fake-gif", "decompression-bomb", "huge-declared-size", "empty"],
)
def test_refused_uploads_say_why_and_store_nothing(app, db, sign_in_as, data, filename, status, message):
    editor = sign_in_as("editor")
    before = media_files(app)
    answer = upload(editor, data, filename=filename, content_type="image/png")
    assert answer.status_code == status
    body = answer.get_data(as_text=True)
    assert message in body and 'role="alert"' in body and "Traceback" not in body
    assert images(db) == [] and media_files(app) == before and audit_actions(db) == []


def test_a_file_over_the_size_limit_is_refused_with_the_limit(app, db, sign_in_as, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_MAX_BYTES", 100 * 1024)
    editor = sign_in_as("editor")
    # Just over the limit: read, then refused by the processing.
    answer = upload(editor, image_bytes("PNG") + b"\0" * (100 * 1024))
    assert answer.status_code == 413 and "images may be at most 0.0977 MB" in answer.get_data(as_text=True)
    # Far over it: refused from its declared length, before the body is read.
    answer = upload(editor, b"\0" * (400 * 1024))
    assert answer.status_code == 413 and "images may be at most 0.0977 MB" in answer.get_data(as_text=True)
    assert images(db) == []


@pytest.mark.parametrize(
    ("alt_text", "message"),
    [("", "Please describe the image"), ("   ", "Please describe the image"), ("a\nb", "line breaks"),
     ("x" * 301, "under 300 characters"), ("{{ config }}", "would start a template"),
     ("a\x00b", "that can&#39;t be stored")],
)  # fmt: skip
def test_alt_text_is_required_and_checked(app, db, sign_in_as, alt_text, message):
    editor = sign_in_as("editor")
    answer = upload(editor, image_bytes("PNG"), alt_text=alt_text)
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert images(db) == []


def test_alt_text_can_be_changed_by_an_editor_only(app, db, sign_in_as):
    editor = sign_in_as("editor")
    upload(editor, image_bytes("PNG"))
    [image] = images(db)
    page = editor.get(f"{LIBRARY}/{image.id}").get_data(as_text=True)
    answer = editor.post(
        f"{LIBRARY}/{image.id}/alt-text", data={**form_fields(page), "alt_text": "A banner: Free Ilham"}
    )
    assert answer.status_code == 302
    assert images(db)[0].alt_text == "A banner: Free Ilham"
    answer = editor.post(f"{LIBRARY}/{image.id}/alt-text", data={**form_fields(page), "alt_text": ""})
    assert answer.status_code == 400 and images(db)[0].alt_text == "A banner: Free Ilham"
    viewer = sign_in_as("viewer")
    own_token = form_fields(viewer.get(f"{LIBRARY}/{image.id}").get_data(as_text=True))
    answer = viewer.post(f"{LIBRARY}/{image.id}/alt-text", data={**own_token, "alt_text": "changed"})
    assert answer.status_code == 403
    assert audit_actions(db) == ["media.upload", "media.alt_text"]


def test_unknown_and_hostile_media_addresses_are_404(app, db, sign_in_as):
    upload(sign_in_as("editor"), image_bytes("GIF"))
    [image] = images(db)
    anyone = app.test_client()
    assert anyone.get(f"/media/{image.file_name()}").status_code == 200
    for name in (f"{image.public_id}.png", f"{image.public_id}-2x.gif", "..%2F..%2Fetc%2Fpasswd",
                 f"{image.public_id}.gif.html", "x" * 22 + ".gif", "%00.gif"):  # fmt: skip
        assert anyone.get(f"/media/{name}").status_code in (400, 404), name
    assert anyone.get(f"{LIBRARY}/99999999999").status_code == 404


def test_deleting_an_image_asks_first_and_removes_its_files(app, db, sign_in_as):
    editor = sign_in_as("editor")
    upload(editor, image_bytes("PNG", size=(1300, 650)))
    [image] = images(db)
    names = image.file_names()
    assert len(names) == 2 and set(names) <= media_files(app)
    draft = make_campaign("A draft with the photo", body=f"![Photo]({image_url(image)})")
    page = editor.get(f"{LIBRARY}/{image.id}/delete")
    assert page.status_code == 200 and "A draft with the photo" in page.get_data(as_text=True)
    assert images(db)  # looking at the confirmation deletes nothing
    answer = editor.post(f"{LIBRARY}/{image.id}/delete", data=form_fields(page.get_data(as_text=True)))
    assert answer.status_code == 302
    assert images(db) == [] and not set(names) & media_files(app)
    assert app.test_client().get(f"/media/{names[0]}").status_code == 404
    assert audit_actions(db) == ["media.upload", "media.delete"]
    with pytest.raises(TemplateRefused, match="no longer in the media library"):
        check_template(db.session.get(Campaign, draft.id).body, "markdown")


def test_an_image_shown_by_a_sent_campaign_cannot_be_deleted(app, db, sign_in_as):
    editor = sign_in_as("editor")
    upload(editor, image_bytes("PNG"))
    [image] = images(db)
    sent = make_campaign("March newsletter", body=f"![Photo]({image_url(image)})")
    db.session.execute(sa.update(Campaign).where(Campaign.id == sent.id).values(status=CampaignStatus.SENT))
    db.session.commit()
    page = editor.get(f"{LIBRARY}/{image.id}/delete").get_data(as_text=True)
    assert "It can't be deleted" in page and "Delete for good" not in page
    answer = editor.post(f"{LIBRARY}/{image.id}/delete", data=form_fields(page))
    assert answer.status_code == 409 and "March newsletter" in answer.get_data(as_text=True)
    assert images(db) and app.test_client().get(f"/media/{image.file_name()}").status_code == 200
    assert audit_actions(db) == ["media.upload"]
    viewer = sign_in_as("viewer")
    viewer_token = form_fields(viewer.get(f"{LIBRARY}/{image.id}").get_data(as_text=True))
    assert viewer.post(f"{LIBRARY}/{image.id}/delete", data=viewer_token).status_code == 403


def test_library_images_are_allowed_in_mail_with_their_size_and_remote_ones_still_are_not(app, db, sign_in_as):
    upload(sign_in_as("editor"), image_bytes("PNG", size=(1300, 650)))
    [image] = images(db)
    url = image_url(image)
    assert url == f"{BASE_URL}/media/{image.public_id}.png"
    campaign = make_campaign("With a photo", body=f"Hello\n\n![Banner: Free the Uyghurs]({url})\n")
    mail = render.render_preview(db.session.get(Campaign, campaign.id))
    [tag] = re.findall(r"<img[^>]*>", mail.html)
    assert f'src="{url}"' in tag and 'alt="Banner: Free the Uyghurs"' in tag
    assert 'width="552"' in tag and 'height="276"' in tag
    assert f'srcset="{BASE_URL}/media/{image.public_id}-2x.png 2x"' in tag
    assert "max-width:100%" in tag.replace(" ", "")
    # An organiser's smaller width is kept, with the height to match; HTML bodies work the same way.
    check_template(f'<p><img src="{url}" alt="Banner" width="200"></p>', "html")
    html_campaign = make_campaign("HTML", body=f'<p><img src="{url}" alt="Banner" width="200"></p>', body_format="html")
    [tag] = re.findall(r"<img[^>]*>", render.render_preview(db.session.get(Campaign, html_campaign.id)).html)
    assert 'width="200"' in tag and 'height="100"' in tag
    # Other sites, our own site outside the library, and look-alike hosts stay refused.
    for src in ("https://tracker.example/pixel.gif", f"{BASE_URL}/organisers/x.png", f"{BASE_URL}.evil.test/media/"
                f"{image.public_id}.png", f"http://lists.uscuk.test/media/{image.public_id}.png"):  # fmt: skip
        with pytest.raises(TemplateRefused, match="can't be used in campaign mail"):
            check_template(f"![x]({src})", "markdown")


def test_the_preview_and_the_dev_mail_viewer_show_library_images_served_over_http_in_development(app, tmp_path):
    from email.message import EmailMessage

    from config import DevelopmentConfig
    from uscmail import create_app
    from uscmail.campaigns.archive import mail_document

    config = DevelopmentConfig()
    config.DEV_MAIL_DIR = str(tmp_path)
    config.BASE_URL = "http://127.0.0.1:5000"
    development = create_app(config)
    with development.test_request_context():
        policy = mail_document("<p>Hello</p>").headers["Content-Security-Policy"]
    assert "img-src http://127.0.0.1:5000 https: data:;" in policy
    message = EmailMessage()
    message["Subject"] = "With a photo"
    message.set_content("Hello")
    message.add_alternative('<p><img src="http://127.0.0.1:5000/media/abcdefghijklmnopqrstuv.png" alt="x"></p>', "html")
    (tmp_path / "1700000000000000000-0123abcd.eml").write_bytes(bytes(message))
    shown = development.test_client().get("/dev/mail/1700000000000000000-0123abcd.eml/html")
    assert "img-src data: http://127.0.0.1:5000;" in shown.headers["Content-Security-Policy"] + ";"
    # Under an https BASE_URL (tests, production) the preview's policy is as it was: https: covers our site.
    with app.test_request_context():
        assert "img-src https: data:;" in mail_document("<p>Hello</p>").headers["Content-Security-Policy"]
