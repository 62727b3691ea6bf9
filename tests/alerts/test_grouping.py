"""Grouping and Alertmanager's notification rules, against real local receivers."""

import pytest
from django.core import mail

from alerts.models import AlertGroup, DeliveryAttempt, Notification, Route
from alerts.services import evaluator_tick, receiver_set
from tests.alerts.factories import heartbeat, silent_workers


@pytest.fixture
def receivers(db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    receiver_set(name="ops-mail", kind="email", addresses="ops@example.com")
    return http_receiver


def test_fifty_silent_workers_make_one_notification_per_receiver(clock, receivers):
    silent_workers(50, silent_for_s=61)
    evaluator_tick()
    assert not receivers.requests and not mail.outbox  # inside the group wait (15 s)
    clock.shift(16)
    evaluator_tick()
    [hook] = receivers.at("/hook")
    [slack] = receivers.at("/slack")
    assert len(mail.outbox) == 1
    body = hook.json()
    assert body["status"] == "firing" and len(body["alerts"]) == 50
    assert body["groupLabels"] == {"alertname": "heartbeat_missing"}
    assert body["commonLabels"] == {"alertname": "heartbeat_missing", "severity": "critical"}
    assert slack.json()["text"] == "[FIRING:50] heartbeat_missing"
    assert mail.outbox[0].subject.startswith("[FIRING:50] heartbeat_missing")
    # Nothing changed: nothing more within the repeat interval, however many flushes pass.
    for _ in range(5):
        clock.shift(121)
        evaluator_tick()
    assert len(receivers.requests) == 2 and len(mail.outbox) == 1


def test_a_new_alert_in_a_notified_group_goes_out_at_the_next_group_interval(clock, receivers):
    silent_workers(2, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    assert len(receivers.at("/hook")) == 1
    silent_workers(1, silent_for_s=61, prefix="late")
    clock.shift(10)
    evaluator_tick()
    assert len(receivers.at("/hook")) == 1  # the group waits for its interval (120 s)
    clock.shift(111)
    evaluator_tick()
    second = receivers.at("/hook")[-1].json()
    assert len(receivers.at("/hook")) == 2 and len(second["alerts"]) == 3


def test_resolution_is_sent_only_to_receivers_that_ask(clock, receivers):
    receiver_set(name="hook", kind="webhook", send_resolved=True)
    workers = silent_workers(2, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    clock.shift(121)
    heartbeat(workers[:1])
    evaluator_tick()
    hooks = receivers.at("/hook")
    assert len(hooks) == 2
    assert sorted(a["status"] for a in hooks[1].json()["alerts"]) == ["firing", "resolved"]
    assert len(receivers.at("/slack")) == 1  # slack did not ask for resolved alerts
    clock.shift(121)
    heartbeat(workers)
    evaluator_tick()
    last = receivers.at("/hook")[-1].json()
    assert last["status"] == "resolved" and len(receivers.at("/hook")) == 3
    assert len(receivers.at("/slack")) == 1  # all resolved: the log is cleared, nothing sent


def test_an_unchanged_group_is_sent_again_after_the_repeat_interval(clock, receivers, settings):
    settings.LEADOPS_ALERT_REPEAT_INTERVAL_S = 600
    silent_workers(1, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    clock.shift(300)
    evaluator_tick()
    assert len(receivers.at("/hook")) == 1
    clock.shift(310)
    evaluator_tick()
    assert len(receivers.at("/hook")) == 2


def test_routes_send_matching_alerts_to_their_receiver_grouped_their_way(clock, receivers):
    from alerts.models import Receiver

    hook = Receiver.objects.get(name="hook")
    Route.objects.create(name="fleet to hook", matchers=[{"name": "alertname", "op": "=", "value": "heartbeat_missing"}],
                         receiver=hook, group_by=["alertname", "worker"], position=1)
    silent_workers(3, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    assert len(receivers.at("/hook")) == 3  # one group per worker
    assert receivers.at("/slack") == [] and mail.outbox == []  # routed away from the others
    assert AlertGroup.objects.count() == 3
    assert Notification.objects.count() == DeliveryAttempt.objects.count() == 3


def test_a_child_route_wins_and_continue_lets_a_sibling_match_too(db):
    from alerts.models import Receiver
    from alerts.selectors import alert_destinations, default_timers, route_tree

    a = receiver_set(name="a", kind="webhook", url="http://127.0.0.1:9/a")
    b = receiver_set(name="b", kind="webhook", url="http://127.0.0.1:9/b")
    c = receiver_set(name="c", kind="webhook", url="http://127.0.0.1:9/c")
    parent = Route.objects.create(name="critical", matchers=[{"name": "severity", "op": "=", "value": "critical"}],
                                  receiver=a, continue_matching=True, position=1)
    Route.objects.create(name="maps", parent=parent, matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                         receiver=b)
    Route.objects.create(name="all", matchers=[], receiver=c, position=2)
    tree, ids, timers = route_tree(), list(Receiver.objects.values_list("id", flat=True)), default_timers()

    def where(labels):
        return sorted(d.receiver_id for d in alert_destinations(labels, tree=tree, receiver_ids=ids, timers=timers))

    assert where({"severity": "critical", "provider": "maps"}) == sorted([b.id, c.id])
    assert where({"severity": "critical", "provider": "yelp"}) == sorted([a.id, c.id])
    assert where({"severity": "warning"}) == [c.id]
