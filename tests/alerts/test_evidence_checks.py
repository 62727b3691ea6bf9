"""LEADOPS_PUBLIC_URL's checks, and what counts as a change of an acknowledged alert (alerts/evidence.py)."""

from __future__ import annotations

import pytest

from alerts import checks as alerts_checks
from alerts.evidence import change_class, change_of


def _ids(messages) -> list[str]:
    return [message.id for message in messages]


@pytest.mark.parametrize("url", ["ops.example.com", "ftp://ops.example.com", "https://", "https://ops.example.com/?a=1"])
def test_a_public_url_that_is_no_absolute_http_url_is_an_error(settings, url):
    settings.LEADOPS_PUBLIC_URL = url
    assert _ids(alerts_checks.check_public_url()) == ["alerts.E002"]


def test_a_public_url_with_a_path_prefix_passes(settings):
    settings.LEADOPS_PUBLIC_URL = "https://example.com/ops"
    assert alerts_checks.check_public_url() == []


def test_no_public_url_in_production_is_a_warning(settings):
    settings.LEADOPS_PUBLIC_URL = ""
    settings.LEADOPS_DEVELOPMENT = False
    assert _ids(alerts_checks.check_public_url_set()) == ["alerts.W002"]
    settings.LEADOPS_DEVELOPMENT = True
    assert alerts_checks.check_public_url_set() == []


EVIDENCE = {"reasons": [["blocked", 20]], "releases": [["stable", "2.4.0", 20]]}


def _class(kind="error_rate", severity="warning", value=0.6, evidence=None):
    return change_class(kind=kind, severity=severity, value=value, evidence=evidence or EVIDENCE)


@pytest.mark.parametrize(("now", "why"), [
    (_class(value=0.99), ""),                                    # 60 % -> 99 %: one class
    (_class(value=0.3), ""),                                     # better is no change
    (_class(value=1.0), "the value grew past twice its class"),
    (_class(severity="critical"), "severity warning -> critical"),
    (_class(evidence={"reasons": [["timeout", 9]], "releases": [["stable", "2.4.0", 9]]}),
     "top reason blocked -> timeout"),
    (_class(evidence={"reasons": [["blocked", 9]], "releases": [["stable", "2.5.0", 9]]}),
     "top release 2.4.0@stable -> 2.5.0@stable"),
])
def test_what_counts_as_a_change_of_an_acknowledged_alert(now, why):
    assert change_of(_class(), now) == why


def test_a_growing_heartbeat_delay_is_no_change():
    was = change_class(kind="heartbeat_missing", severity="critical", value=60, evidence={})
    assert change_of(was, change_class(kind="heartbeat_missing", severity="critical", value=6000, evidence={})) == ""


def test_an_alertmanager_gets_the_alert_page_as_generator_url_only_when_it_is_absolute():
    from alerts.notifiers import alertmanager_payload

    def entry(link: str) -> dict:
        return {"status": "firing", "labels": {"alertname": "error_rate"}, "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "validUntil": "2026-01-01T00:06:00Z", "generatorURL": "", "links": {"alert": link}}

    absolute, path = alertmanager_payload({"alerts": [entry("https://ops.example.test/admin/alerts/alert/1/change/"),
                                                       entry("/admin/alerts/alert/1/change/")]})
    assert absolute["generatorURL"] == "https://ops.example.test/admin/alerts/alert/1/change/"
    assert path["generatorURL"] == ""
