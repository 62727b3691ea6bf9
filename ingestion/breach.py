"""The breach register: an incident, its 72-hour clock from discovery, the notification and its draft.

PDPL has a breach notified to the authority within 72 hours of becoming aware of it. The alert
`breach_deadline` fires 48 and 72 hours after discovery while no notification is recorded; the draft
text gathers what the authority's form asks for, to be reviewed, never sent by the portal
(docs/PRIVACY.md, "Breach register"). Every change is audited (`privacy.breach_*`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import Actor, audited_update, staff_action_record
from ingestion.models import BreachIncident

NOTIFY_WITHIN = dt.timedelta(hours=72)
OBJECT_TYPE = "ingestion.breachincident"
# The fields staff may change after opening (admin), each change audited.
EDITABLE = ("title", "description", "occurred_at", "discovered_at", "data_classes", "approx_subjects",
            "approx_records", "consequences", "actions", "contact", "notified_at", "notification_reference",
            "subjects_notified_at", "closed_at")


def breach_deadline(incident: BreachIncident) -> dt.datetime:
    return incident.discovered_at + NOTIFY_WITHIN


def breach_open(*, title: str, description: str, discovered_at: dt.datetime, data_classes: str, actor: Actor,
                **fields: Any) -> BreachIncident:
    """Record an incident as known now; the clock runs from `discovered_at`. Audited."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"not breach fields: {sorted(unknown)}")
    with transaction.atomic():
        incident = BreachIncident.objects.create(
            title=title, description=description, discovered_at=discovered_at, data_classes=data_classes,
            created_by=actor.name[:150], **fields)
        staff_action_record(actor=actor, action="privacy.breach_open", object_type=OBJECT_TYPE,
                            object_ids=[incident.pk],
                            detail={"discovered_at": discovered_at.isoformat(),
                                    "deadline": breach_deadline(incident).isoformat()})
    return incident


def breach_update(*, incident: BreachIncident, values: dict[str, Any], actor: Actor) -> dict[str, list[Any]]:
    """Change what is known of an incident (admin); audited with the changes."""
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise TypeError(f"not breach fields: {sorted(unknown)}")
    return audited_update(instance=incident, values=values, actor=actor, action="privacy.breach_update",
                          object_type=OBJECT_TYPE)


def breach_notification_record(*, incident: BreachIncident, reference: str, actor: Actor,
                               notified_at: dt.datetime | None = None) -> BreachIncident:
    """Record that the authority was notified (stops the clock's alerts). Audited."""
    breach_update(incident=incident, values={"notified_at": notified_at or timezone.now(),
                                             "notification_reference": reference[:200]}, actor=actor)
    return incident


def _when(value: dt.datetime | None) -> str:
    return "not known yet" if value is None else f"{timezone.localtime(value):%Y-%m-%d %H:%M %Z}"


def _about(value: int | None) -> str:
    return "not known yet" if value is None else f"about {value:,}"


def breach_notification_draft(*, incident: BreachIncident) -> str:
    """The notification to the authority as a text to review, filled from the incident.

    Its headings follow what a PDPL breach notification asks for: what happened and when, when it was
    discovered, the data and people affected, likely consequences, measures, a contact, whether the
    people were told, and why any notice comes after 72 hours. Not legal advice: review every line.
    """
    deadline = breach_deadline(incident)
    late = (incident.notified_at or timezone.now()) > deadline
    classes = [line.strip() for line in incident.data_classes.splitlines() if line.strip()]
    lines = [
        f"DRAFT - personal data breach notification (incident {incident.pk}) - review before sending",
        "",
        f"1. Title: {incident.title}",
        f"2. Description of the incident: {incident.description}",
        f"3. When it occurred: {_when(incident.occurred_at)}",
        f"4. When it was discovered: {_when(incident.discovered_at)} (notify by {_when(deadline)})",
        "5. Categories of personal data affected:",
        *[f"   - {name}" for name in classes or ["not known yet"]],
        f"6. Number of people affected: {_about(incident.approx_subjects)}",
        f"7. Number of records affected: {_about(incident.approx_records)}",
        f"8. Likely consequences for the people: {incident.consequences or 'being assessed'}",
        f"9. Measures taken or proposed: {incident.actions or 'being decided'}",
        f"10. Contact for the authority: {incident.contact or 'to be filled in'}",
        "11. People affected notified: " + (_when(incident.subjects_notified_at)
                                            if incident.subjects_notified_at else "not yet"),
    ]
    if late:
        lines.append("12. Reasons for notifying after 72 hours: to be filled in")
    return "\n".join(lines) + "\n"
