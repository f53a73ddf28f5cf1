"""The consent wording shown on the signup form, in each language of the public pages.

Each version is kept verbatim: never edit a published one, add a new one. Every language's wording is a version of its
own, with its own hash, so the evidence stored with a consent is exactly the text that person read.
"""

import hashlib
from dataclasses import dataclass

from ..extensions import db
from ..i18n import current_locale
from ..models import ConsentWording

WORDINGS = {
    "2026-11-27": (
        "I want to receive emails from the Uyghur Solidarity Campaign UK (USC-UK) on the lists I have ticked: "
        "campaign news and actions, and reminders of our monthly protests. USC-UK keeps my email address and name "
        "only to send me these emails, never shares them, and does not track whether I open them. I can withdraw "
        "my consent at any time with the unsubscribe link in every email, or erase my data from the preference page."
    ),
    "2026-12-06-ug": (
        "مەن ئەنگلىيە ئۇيغۇرلار بىلەن ھەمدەملىك ھەرىكىتى (USC-UK) دىن ئۆزۈم بەلگە قويغان تىزىملىكلەر بويىچە "
        "ئېلخەت تاپشۇرۇۋېلىشنى خالايمەن: ھەرىكەت خەۋەرلىرى ۋە ھەرىكەتكە چاقىرىقلار، شۇنداقلا ھەر ئايلىق "
        "نامايىشلىرىمىزنىڭ ئەسكەرتمىلىرى. USC-UK مېنىڭ ئېلخەت ئادرېسىم ۋە ئىسمىمنى پەقەت ماڭا بۇ ئېلخەتلەرنى "
        "ئەۋەتىش ئۈچۈنلا ساقلايدۇ، ئۇلارنى ھېچكىمگە بەرمەيدۇ، ئېلخەتلەرنى ئاچقان-ئاچمىغانلىقىمنىمۇ ئىز "
        "قوغلىمايدۇ. مەن خالىغان ۋاقىتتا ھەر بىر ئېلخەتتىكى مۇشتەرىلىكتىن چېكىنىش ئۇلانمىسى ئارقىلىق "
        "رازىلىقىمنى قايتۇرۇۋالالايمەن، ياكى تاللاش بېتىدە ئۇچۇرلىرىمنى ئۆچۈرۈۋېتەلەيمەن."
    ),
    "2026-12-06-zh": (
        "我希望收到英国声援维吾尔人运动（USC-UK）按我所勾选的邮件列表发送的电子邮件：运动新闻与行动，"
        "以及我们每月抗议活动的提醒。USC-UK 保存我的电子邮件地址和姓名，仅用于向我发送这些邮件，"
        "绝不与任何人分享，也不追踪我是否打开邮件。我可以随时通过每封邮件中的退订链接撤回同意，"
        "或在偏好设置页面删除我的数据。"
    ),
}
CURRENT_VERSION = "2026-11-27"
# The wording each language shows now; a signup must come back with the version of the language it was shown in.
CURRENT_VERSIONS = {"en": CURRENT_VERSION, "ug": "2026-12-06-ug", "zh": "2026-12-06-zh"}


def wording_sha256(text: str) -> str:
    """SHA-256 of a wording's exact text, as stored beside each consent."""
    return hashlib.sha256(text.encode()).hexdigest()


def current_version(locale: str | None = None) -> str:
    """The version shown now in `locale` (by default the language of the page or mail being rendered)."""
    return CURRENT_VERSIONS.get(locale or current_locale(), CURRENT_VERSION)


@dataclass(frozen=True)
class ShownWording:
    """A wording as a page shows it: its version and text."""

    version: str
    text: str


def shown_wording(locale: str | None = None) -> ShownWording:
    """The wording shown now in `locale` (as current_version), from this module: showing it stores nothing, and
    the stored row a consent points to is made when the consent is (wording())."""
    version = current_version(locale)
    return ShownWording(version, WORDINGS[version])


def current_wording(locale: str | None = None) -> ConsentWording:
    """The wording shown now in `locale` (as current_version), stored in the database the first time it is needed."""
    return wording(current_version(locale))


def wording(version: str) -> ConsentWording:
    """A published wording by version, stored if not yet stored; KeyError for an unknown version."""
    text = WORDINGS[version]
    row = db.session.get(ConsentWording, version)
    if row is None:
        row = ConsentWording(version=version, text=text, sha256=wording_sha256(text))
        db.session.add(row)
        db.session.flush()
    return row
