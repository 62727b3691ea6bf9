"""Delivery: retries with backoff honouring Retry-After, the per-attempt log, Slack pacing, the payloads."""

import hashlib
import hmac
import itertools

import pytest
from django.core.management import CommandError, call_command

from alerts.models import AlertGroup, DeliveryAttempt, Notification, NotificationStatus, Receiver, Route
from alerts.notifiers import slack_escape
from alerts.services import evaluator_tick, receiver_set, rule_set
from tests.alerts.factories import silent_workers


def fire_and_flush(clock, workers=1):
    silent_workers(workers, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()


def test_a_failing_receiver_is_retried_honouring_retry_after_until_it_recovers(clock, db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    http_receiver.script("/hook", [(500, {}, "boom"), (429, {"Retry-After": "7"}, "slow down"), (200, {}, "ok")])
    fire_and_flush(clock)
    assert Notification.objects.get().status == NotificationStatus.PENDING
    clock.shift(1.01)  # the first backoff is at most one second
    evaluator_tick(evaluate=False)
    assert len(http_receiver.at("/hook")) == 2
    clock.shift(5)
    evaluator_tick(evaluate=False)
    assert len(http_receiver.at("/hook")) == 2  # Retry-After: 7 is honoured
    clock.shift(2.1)
    evaluator_tick(evaluate=False)
    posts = http_receiver.at("/hook")
    assert len(posts) == 3 and posts[0].body == posts[2].body  # the same message each time
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.DELIVERED and notification.attempts == 3
    log = list(DeliveryAttempt.objects.order_by("number").values_list("number", "ok", "status_code", "retry_after_s"))
    assert log == [(1, False, 500, None), (2, False, 429, 7.0), (3, True, 200, None)]
    assert "500" in DeliveryAttempt.objects.get(number=1).error
    group = AlertGroup.objects.get()
    assert group.last_firing == notification.firing  # the notification log moves only on delivery


def test_a_receiver_that_never_recovers_is_given_up_and_tried_again_at_the_next_flush(clock, db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    http_receiver.script("/hook", [(503, {}, "")] * 30)
    fire_and_flush(clock)
    for _ in range(12):
        clock.shift(30)
        evaluator_tick(evaluate=False)
    first = Notification.objects.order_by("id").first()
    assert first.status == NotificationStatus.FAILED
    assert first.attempts == DeliveryAttempt.objects.filter(notification=first).count() >= 3
    # The group's log was never written, so the next flush makes a new notification.
    assert AlertGroup.objects.get().last_notified_at is None
    assert Notification.objects.count() >= 2


def test_a_connection_error_is_logged_and_retried(clock, db):
    receiver_set(name="nowhere", kind="webhook", url="http://127.0.0.1:9/closed")
    fire_and_flush(clock)
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.ok and attempt.status_code is None and attempt.error.startswith("ConnectError")
    assert Notification.objects.get().status == NotificationStatus.PENDING


def test_slack_gets_at_most_one_message_a_second(clock, db, http_receiver):
    slack = receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    Route.objects.create(name="per worker", receiver=slack, group_by=["alertname", "worker"])
    fire_and_flush(clock, workers=3)
    assert len(http_receiver.at("/slack")) == 1
    clock.shift(0.5)
    evaluator_tick(evaluate=False)
    assert len(http_receiver.at("/slack")) == 1
    clock.shift(0.5)
    evaluator_tick(evaluate=False)
    clock.shift(1)
    evaluator_tick(evaluate=False)
    arrivals = [r.at for r in http_receiver.at("/slack")]
    assert len(arrivals) == 3
    assert all(later - earlier >= 1 for earlier, later in itertools.pairwise(arrivals))
    assert DeliveryAttempt.objects.count() == 3  # waiting for the slot is not a failed attempt


def test_a_slack_429_holds_every_message_to_that_webhook(clock, db, http_receiver):
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    http_receiver.script("/slack", [(429, {"Retry-After": "30"}, "rate_limited")])
    fire_and_flush(clock)
    assert Receiver.objects.get().next_send_at is not None
    clock.shift(29)
    evaluator_tick(evaluate=False)
    assert len(http_receiver.at("/slack")) == 1
    clock.shift(1.5)
    evaluator_tick(evaluate=False)
    assert len(http_receiver.at("/slack")) == 2
    assert Notification.objects.get().status == NotificationStatus.DELIVERED


def test_the_webhook_is_alertmanager_json_signed_with_hmac(clock, db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"), secret="s3cret-key")
    fire_and_flush(clock)
    [post] = http_receiver.at("/hook")
    expected = "sha256=" + hmac.new(b"s3cret-key", post.body, hashlib.sha256).hexdigest()
    assert post.headers["X-LeadOps-Signature"] == expected
    body = post.json()
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "hook"
    [alert] = body["alerts"]
    assert set(alert) >= {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"}
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert {"groupLabels", "commonLabels", "commonAnnotations", "groupKey"} <= set(body)


def test_an_unsigned_webhook_carries_no_signature(clock, db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    fire_and_flush(clock)
    assert "X-LeadOps-Signature" not in http_receiver.at("/hook")[0].headers


def test_teams_gets_an_adaptive_card_of_version_at_most_1_4_and_202_is_success(clock, db, http_receiver):
    receiver_set(name="teams", kind="teams", url=http_receiver.url("/teams"))
    http_receiver.script("/teams", [(202, {}, "")])
    fire_and_flush(clock)
    body = http_receiver.at("/teams")[0].json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert tuple(int(p) for p in card["version"].split(".")) <= (1, 4)
    assert "FIRING" in card["body"][0]["text"]
    assert Notification.objects.get().status == NotificationStatus.DELIVERED


def test_slack_gets_text_and_blocks(clock, db, http_receiver):
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    fire_and_flush(clock, workers=2)
    body = http_receiver.at("/slack")[0].json()
    assert body["text"] == "[FIRING:2] heartbeat_missing"
    assert body["blocks"][0]["type"] == "header" and len(body["blocks"]) == 3


def _texts(node) -> list[str]:
    """Every text object's text in a Slack payload."""
    if isinstance(node, dict) and node.get("type") in ("plain_text", "mrkdwn"):
        return [node["text"]]
    if isinstance(node, dict):
        return _texts(list(node.values()))
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []


def test_slack_text_is_escaped_and_labels_render_as_written(clock, db, http_receiver):
    rule_set(kind="heartbeat_missing", labels={"team": "on_call*ops*", "note": "a & <b> > c", "owner": "_x_"})
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    fire_and_flush(clock)
    body = http_receiver.at("/slack")[0].json()
    texts = [body["text"], *_texts(body["blocks"])]
    # Slack's three control characters are entities everywhere; nothing else is encoded.
    assert not any(c in text for text in texts for c in "<>")
    assert all(text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").count("&") == 0 for text in texts)
    [alert] = [block for block in body["blocks"] if block["type"] == "section"]
    fields = {field["text"] for field in alert["fields"]}
    assert {"team=on_call*ops*", "note=a &amp; &lt;b&gt; &gt; c", "owner=_x_"} <= fields
    # plain_text: Slack applies no mrkdwn to it, so _ and * show as written (and no :emoji: codes).
    assert all(field["type"] == "plain_text" and field["emoji"] is False for field in alert["fields"])
    assert alert["text"]["type"] == "plain_text" and alert["text"]["text"].startswith("FIRING heartbeat_missing: ")


def test_slack_escaping_never_cuts_an_entity_in_half():
    assert slack_escape("a<b", limit=5) == "a&lt;"
    assert slack_escape("a<b", limit=4) == "a"
    assert slack_escape("x_y*z & w") == "x_y*z &amp; w"


def test_an_existing_alertmanager_gets_the_alerts_on_its_v2_api(clock, db, http_receiver):
    receiver_set(name="am", kind="alertmanager", url=http_receiver.url("/am"))
    fire_and_flush(clock)
    [post] = http_receiver.at("/am/api/v2/alerts")
    [alert] = post.json()
    assert alert["labels"]["alertname"] == "heartbeat_missing"
    assert alert["endsAt"] > alert["startsAt"]  # valid for a few group intervals, re-posted while firing
    clock.shift(121)
    evaluator_tick()
    assert len(http_receiver.at("/am/api/v2/alerts")) == 2


def test_email_subject_has_the_status_and_alertname(clock, db, smtp_receiver):
    receiver_set(name="mail", kind="email", addresses="ops@example.com,oncall@example.com")
    fire_and_flush(clock)
    [mail] = smtp_receiver.wait_for(1)
    assert mail.message["Subject"].startswith("[FIRING:1] heartbeat_missing")
    assert sorted(mail.recipients) == ["oncall@example.com", "ops@example.com"]


def test_alert_test_delivers_and_exits_nonzero_when_not_delivered(db, http_receiver, capsys):
    receiver_set(name="good", kind="slack", url=http_receiver.url("/good"))
    receiver_set(name="bad", kind="webhook", url=http_receiver.url("/bad"))
    http_receiver.script("/bad", [(500, {}, "down")])
    call_command("alert_test", "good")
    assert "Delivered to good" in capsys.readouterr().out
    assert http_receiver.at("/good")[0].json()["text"].startswith("[FIRING:1] test")
    with pytest.raises(CommandError, match="Not delivered to bad: HTTP 500"):
        call_command("alert_test", "bad")
    with pytest.raises(CommandError, match="No receiver named"):
        call_command("alert_test", "missing")
    assert DeliveryAttempt.objects.count() == 2


def test_receiver_urls_and_secrets_are_encrypted_at_rest(db):
    receiver = receiver_set(name="hook", kind="webhook", url="https://hooks.example.com/T000/secret-path",
                            secret="very-secret")
    stored = Receiver.objects.values("url_encrypted", "secret_encrypted", "url_hint").get(pk=receiver.pk)
    assert "secret-path" not in stored["url_encrypted"] and "very-secret" not in stored["secret_encrypted"]
    assert stored["url_hint"] == "https://hooks.example.com/…"
