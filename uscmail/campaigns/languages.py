"""A campaign in its readers' languages: the campaign's own subject and body are in `campaign.locale`; each
translation gives another language's. A reader gets the version in their language, else the campaign's own."""

from ..i18n import LANGUAGES
from .models import Campaign, CampaignTranslation

# The languages a campaign may be written in are those the public side speaks (uscmail.i18n.LANGUAGES); organisers'
# pages are English, so each is named in English with its own name beside it.
ENGLISH_NAMES = {"en": "English", "ug": "Uyghur", "zh": "Chinese"}
LANGUAGE_NAMES = {
    code: ENGLISH_NAMES[code] if ENGLISH_NAMES[code] == lang.name else f"{ENGLISH_NAMES[code]} ({lang.name})"
    for code, lang in LANGUAGES.items()
}


def text_direction(locale: str | None) -> str:
    """'rtl' for a language written right to left, else 'ltr' (unknown codes too)."""
    found = LANGUAGES.get(locale or "")
    return found.direction if found else "ltr"


class CampaignInLanguage:
    """A campaign as the readers of one language get it: the translation's subject, preheader and body, and the
    campaign's everything else (sender, lists, format, calendar, ids). Read-only."""

    def __init__(self, campaign: Campaign, translation: CampaignTranslation | None = None):
        self._campaign = campaign
        source = translation or campaign
        self.locale = translation.locale if translation else (campaign.locale or "en")
        self.subject, self.preheader, self.body = source.subject, source.preheader, source.body

    def __getattr__(self, name: str):
        return getattr(self._campaign, name)


def versions(campaign: Campaign) -> dict[str, CampaignInLanguage]:
    """Every version of the campaign by locale, its own first."""
    found = {campaign.locale or "en": CampaignInLanguage(campaign)}
    for translation in campaign.translations:
        found.setdefault(translation.locale, CampaignInLanguage(campaign, translation))
    return found


def in_language(campaign: Campaign, locale: str | None) -> CampaignInLanguage:
    """The version a reader of `locale` gets: its translation, else the campaign's own."""
    all_versions = versions(campaign)
    return all_versions.get(locale or "", all_versions[campaign.locale or "en"])
