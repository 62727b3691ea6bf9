"""Choices label a member without a written label by its name in sentence case (core/choices.py)."""

from core.choices import TextChoices
from core.models import StaffSource
from ingestion.choices import PhoneType
from releases_app.models import ReleaseAuditAction


class Colour(TextChoices):
    DARK_RED = "dark_red"
    BLUE = "blue", "Blue (the sky's)"


def test_a_member_without_a_label_gets_its_name_in_sentence_case():
    assert Colour.DARK_RED.label == "Dark red"
    assert Colour.choices == [("dark_red", "Dark red"), ("blue", "Blue (the sky's)")]
    assert Colour.DARK_RED == "dark_red" and Colour("blue") is Colour.BLUE


def test_the_project_choices_keep_their_labels():
    assert StaffSource.ADMIN.label == "Admin"
    assert ReleaseAuditAction.RELEASE_UPLOADED.label == "Release uploaded"
    assert ReleaseAuditAction.RELEASE_SELF_TESTED.label == "Release self-tested"
    assert PhoneType.FIXED_LINE_OR_MOBILE.label == "Fixed line or mobile"
    assert PhoneType.VOIP.label == "VoIP"
