"""Who a campaign may be sent as: the From address must be one of ours (MAIL_DEFAULT_SENDER's or MAIL_SENDERS'),
checked when a campaign is saved and again before anything is mailed, since MAIL_SENDERS may change in between."""

from email_validator import EmailNotValidError, validate_email

from ..mail.messages import allowed_sender, allowed_senders
from ..validation import InvalidInput
from .models import Campaign


def sender_email(raw: str, what: str) -> str:
    """Validate a sender or reply-to address. Unlike a supporter's address, the reserved `.test` domain is allowed
    (development and tests send from it)."""
    try:
        result = validate_email(
            raw.strip(), check_deliverability=False, test_environment=True, globally_deliverable=False
        )
    except EmailNotValidError as exc:
        raise InvalidInput(f"The {what} doesn't look like an email address: {exc}") from None
    return result.normalized


def _choices(addresses: list[str]) -> str:
    return addresses[0] if len(addresses) == 1 else ", ".join(addresses[:-1]) + " or " + addresses[-1]


def campaign_sender(raw: str) -> str:
    """A From address, which must be one of the configured senders (MAIL_DEFAULT_SENDER's or MAIL_SENDERS'), in
    the configured spelling; InvalidInput otherwise, so no one can send as an address that is not ours."""
    address = sender_email(raw, "sender address")
    allowed = allowed_sender(address)
    if allowed is None:
        raise InvalidInput(f"{address} is not one of our sender addresses; choose {_choices(allowed_senders())}.")
    return allowed


def check_sender(campaign: Campaign) -> None:
    """Refuse to mail a campaign saved with a sender that MAIL_SENDERS no longer allows (nothing is changed)."""
    if allowed_sender(campaign.from_email) is None:
        remedy = (
            f"edit it and choose {_choices(allowed_senders())}"
            if campaign.editable
            else "cancel it, or ask an administrator to allow the address again"
        )
        raise InvalidInput(
            f"This campaign's sender address {campaign.from_email} is no longer one of ours, so nothing was sent; "
            f"{remedy}."
        )
