"""Choices shared by the models and by code that runs before the app registry (logging)."""

from django.db import models


class PhoneType(models.TextChoices):
    """The line type phonenumbers reports; `unknown` for invalid or unclassifiable numbers."""

    MOBILE = "mobile", "Mobile"
    FIXED_LINE = "fixed_line", "Fixed line"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile", "Fixed line or mobile"
    TOLL_FREE = "toll_free", "Toll free"
    PREMIUM_RATE = "premium_rate", "Premium rate"
    SHARED_COST = "shared_cost", "Shared cost"
    VOIP = "voip", "VoIP"
    PERSONAL_NUMBER = "personal_number", "Personal number"
    PAGER = "pager", "Pager"
    UAN = "uan", "Universal access number"
    VOICEMAIL = "voicemail", "Voicemail"
    UNKNOWN = "unknown", "Unknown"
