"""Silences mute matching alerts; when one ends while the alert still fires, it is sent."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Silence
from alerts.selectors import silence_is_active
from alerts.services import AlertsError, evaluator_tick, receiver_set, silence_create, silence_expire
from tests.alerts.factories import silent_workers
from tests.clock import local_time


@pytest.fixture
def hook(db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    return http_receiver


def test_a_silenced_alert_sends_nothing_until_the_silence_ends(clock, hook):
    [worker] = silent_workers(1, silent_for_s=61)
    silence_create(matchers=[{"name": "worker", "op": "=", "value": worker}],
                   ends_at=timezone.now() + dt.timedelta(minutes=10), created_by="ops", comment="maintenance")
    for _ in range(10):
        evaluator_tick()
        clock.shift(59)
    assert hook.requests == []
    clock.shift(20)  # the silence has ended; the alert still fires
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    [sent] = hook.at("/hook")
    assert [a["labels"]["worker"] for a in sent.json()["alerts"]] == [worker]


def test_a_silence_mutes_only_what_it_matches(clock, hook):
    workers = silent_workers(3, silent_for_s=61)
    call_command("alert_silence_add", "--match", f"worker=~{workers[0]}|{workers[1]}", "--minutes", "30",
                 "--comment", "two of them", "--author", "ops")
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    [sent] = hook.at("/hook")
    assert [a["labels"]["worker"] for a in sent.json()["alerts"]] == [workers[2]]


def test_expiring_a_silence_early_lets_the_alert_out(clock, hook):
    silent_workers(1, silent_for_s=61)
    silence = silence_create(matchers=[{"name": "alertname", "op": "=", "value": "heartbeat_missing"}],
                             ends_at=timezone.now() + dt.timedelta(hours=4), created_by="ops", comment="deploy")
    evaluator_tick()
    clock.shift(30)
    evaluator_tick()
    assert hook.requests == []
    assert silence_expire(silence=silence)
    assert not silence_expire(silence=silence)  # once only
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    assert len(hook.at("/hook")) == 1


def test_alert_silence_add_prints_the_id(db, capsys):
    call_command("alert_silence_add", "--match", "provider=maps", "--match", "severity!=info", "--minutes", "15",
                 "--comment", "provider outage, ticket 42")
    silence = Silence.objects.get(pk=int(capsys.readouterr().out.strip()))
    assert silence.matchers == [{"name": "provider", "op": "=", "value": "maps"},
                                {"name": "severity", "op": "!=", "value": "info"}]
    assert 14 * 60 < (silence.ends_at - silence.starts_at).total_seconds() <= 15 * 60


def test_a_recurring_window_mutes_only_on_its_weekday_and_hours(db):
    inside = local_time(2, 30, days=1)
    weekday = timezone.localtime(inside).weekday()
    silence = silence_create(matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                             starts_at=timezone.now(), ends_at=timezone.now() + dt.timedelta(days=30),
                             created_by="ops", comment="nightly provider maintenance",
                             weekdays=[weekday], hour_start=2, hour_end=4)
    assert silence_is_active(silence, inside)
    assert not silence_is_active(silence, local_time(4, 0, days=1))
    assert not silence_is_active(silence, local_time(2, 30, days=2))  # another weekday
    assert silence_is_active(silence, local_time(3, 59, days=8))  # the same weekday a week later


def test_silencing_a_notified_alert_sends_nothing_and_it_returns_when_the_silence_is_expired(clock, hook):
    [worker] = silent_workers(1, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    assert len(hook.at("/hook")) == 1
    silence = silence_create(matchers=[{"name": "worker", "op": "=", "value": worker}],
                             ends_at=timezone.now() + dt.timedelta(hours=1), created_by="ops", comment="on it")
    for _ in range(3):
        clock.shift(121)
        evaluator_tick()
    assert len(hook.at("/hook")) == 1  # silenced: no resolved message either, it did not resolve
    silence_expire(silence=silence)
    clock.shift(1)
    evaluator_tick()
    clock.shift(121)
    evaluator_tick()
    assert len(hook.at("/hook")) == 2
    assert hook.at("/hook")[1].json()["status"] == "firing"


def test_a_maintenance_window_may_cross_midnight(clock, db):
    # 22:00-06:00 local time opening on one weekday is one silence: that night, into the next morning.
    evening = local_time(22, 0, days=1)
    opens_on = timezone.localtime(evening).weekday()
    silence = silence_create(matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                             starts_at=timezone.now(), ends_at=timezone.now() + dt.timedelta(days=30),
                             created_by="ops", comment="nightly re-index", weekdays=[opens_on],
                             hour_start=22, hour_end=6)
    assert not silence_is_active(silence, local_time(21, 59, days=1))
    assert silence_is_active(silence, evening)
    assert silence_is_active(silence, local_time(23, 59, days=1))
    assert silence_is_active(silence, local_time(0, 0, days=2))  # after midnight, on the next weekday
    assert silence_is_active(silence, local_time(5, 59, days=2))
    assert not silence_is_active(silence, local_time(6, 0, days=2))
    assert not silence_is_active(silence, local_time(22, 30, days=2))  # the next evening is not its weekday
    assert not silence_is_active(silence, local_time(3, 0, days=1))  # nor the morning before it opened
    assert silence_is_active(silence, local_time(1, 0, days=9))  # the same night a week later


@pytest.mark.parametrize("hours, message", [
    ((5, 5), "must differ from its start hour"),
    ((24, 6), "start hour is 0 to 23"),
    ((22, 25), "end hour is 0 to 24"),
])
def test_a_window_that_names_no_hours_is_refused(db, hours, message):
    with pytest.raises(AlertsError, match=message):
        silence_create(matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                       ends_at=timezone.now() + dt.timedelta(days=1), created_by="ops", comment="c",
                       weekdays=[0], hour_start=hours[0], hour_end=hours[1])
    assert not Silence.objects.exists()


def test_hours_without_weekdays_are_refused_not_ignored(db):
    with pytest.raises(AlertsError, match="needs its weekdays"):
        silence_create(matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                       ends_at=timezone.now() + dt.timedelta(days=1), created_by="ops", comment="c",
                       hour_start=22, hour_end=6)
