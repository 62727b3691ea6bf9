"""Choices shared by the models and by code that runs before the app registry (logging)."""

from core.choices import TextChoices


class PhoneType(TextChoices):
    """The line type phonenumbers reports; `unknown` for invalid or unclassifiable numbers."""

    MOBILE = "mobile"
    FIXED_LINE = "fixed_line"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip", "VoIP"
    PERSONAL_NUMBER = "personal_number"
    PAGER = "pager"
    UAN = "uan", "Universal access number"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"
