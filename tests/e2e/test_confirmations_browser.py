"""Destructive admin actions ask first, in a real browser with the portal's Content-Security-Policy on.

Each button below once relied on an inline `confirm()`, which the CSP (`script-src 'self'`) blocks, so
one click did the deed. Now the first click opens a confirmation page that names what will happen and
changes nothing (checked in the database); its "Yes" POSTs with a CSRF token and does it. Debian
chromium through Playwright (never a downloaded browser), on daphne with the settings' CSP.
"""

from __future__ import annotations

import io

import pytest

from tests.e2e.conftest import ARTIFACTS, admin_login
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the checks between clicks read the
    # database synchronously, which is safe here (one thread, no loop task touches Django).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def staff(live_portal_url):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)


class Watcher:
    """Collects what the browser says about blocked scripts: the CSP must never have to refuse one."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url = page, base_url
        self.violations: list[str] = []
        page.on("console", lambda message: self.violations.append(message.text)
                if "Content Security Policy" in message.text else None)

    def click(self, locator) -> None:
        """Click, wait for the next page, and check it carries the CSP."""
        with self.page.expect_navigation() as navigation:
            locator.click()
        response = navigation.value
        assert response is not None and response.status == 200, response and response.status
        assert "script-src 'self'" in response.headers.get("content-security-policy", "")

    def asks(self, locator, question: str) -> None:
        self.click(locator)
        self.page.wait_for_selector("#confirm-question")
        assert question in self.page.locator("#confirm-question").inner_text()

    def confirm(self) -> None:
        self.click(self.page.locator("#confirm-submit"))


def key_states(worker_id: str) -> dict[str, str]:
    from workers_mgmt.models import WorkerCredential

    return dict(WorkerCredential.objects.filter(worker_id=worker_id).values_list("key_id", "state"))


@pytest.fixture
def worker_key(live_portal_url, staff):
    return make_worker(worker_id="confirm-1")[1]


def test_worker_rotate_revoke_and_emergency_ask_first(live_portal_url, worker_key, browser):
    first = worker_key
    page = admin_login(browser, live_portal_url, "/admin/workers_mgmt/worker/confirm-1/change/", "staff", PASSWORD)
    watch = Watcher(page, live_portal_url)

    # Rotate (push): the first click asks; no pending key yet.
    watch.asks(page.locator("#rotate-form button[type=submit]"), "Start a push rotation of worker confirm-1")
    assert key_states("confirm-1") == {first.key_id: "current"}
    watch.confirm()
    pending = next(key for key, state in key_states("confirm-1").items() if state == "pending")

    # Revoke the pending key: asked, unchanged, then revoked.
    watch.asks(page.locator(f"button[data-revoke='{pending}']"), f"Revoke key {pending}")
    assert key_states("confirm-1")[pending] == "pending"
    watch.confirm()
    assert key_states("confirm-1")[pending] == "revoked"

    # Emergency rotation: asked (naming the live key), unchanged, then every key revoked and one new.
    watch.asks(page.get_by_role("button", name="Emergency rotate"), "Revoke every key of worker confirm-1 now")
    assert first.key_id in page.locator("#confirm-objects").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "confirm_emergency_rotation.png"), full_page=True)
    assert key_states("confirm-1") == {first.key_id: "current", pending: "revoked"}
    watch.confirm()
    states = key_states("confirm-1")
    assert states[first.key_id] == "revoked" and list(states.values()).count("current") == 1
    assert "Emergency rotation of confirm-1" in page.content()
    assert watch.violations == []


def publish(*versions: str) -> None:
    from releases_app.services import release_publish
    from tests.releases_app.builders import tar_artifact

    for version in versions:
        release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)), filename="w.tar.gz",
                        actor="staff")


def channel_on(channel: str, version: str) -> None:
    from releases_app.services import rollout_promote, rollout_start

    rollout_start(version=version, channel_name=channel, steps=[{"percent": 100}], actor="staff")
    rollout_promote(channel_name=channel, actor="staff")


def rollout_running(channel: str, version: str):
    from releases_app.services import rollout_start

    return rollout_start(version=version, channel_name=channel, actor="staff",
                         steps=[{"percent": 50, "hold_s": 1800}, {"percent": 100}])


def state_of(rollout) -> str:
    rollout.refresh_from_db()
    return rollout.state


def current_of(channel: str) -> str:
    from releases_app.models import Channel

    return Channel.objects.select_related("current").get(name=channel).current.version


@pytest.fixture
def rollouts(live_portal_url, staff, settings, tmp_path):
    """Made before the browser starts: a service's live events cannot be sent from Playwright's loop."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    publish("1.0.0", "1.1.0", "1.2.0")
    made = {}
    for channel in ("stable", "edge", "beta", "gamma"):
        channel_on(channel, "1.0.0")
        channel_on(channel, "1.1.0")
        if channel != "beta":
            made[channel] = rollout_running(channel, "1.2.0")
    return made


def test_rollout_pause_abort_and_rollback_ask_first(live_portal_url, rollouts, browser):
    first, second = rollouts["stable"], rollouts["edge"]
    page = admin_login(browser, live_portal_url, f"/admin/releases_app/rollout/{first.pk}/change/", "staff",
                       PASSWORD)
    watch = Watcher(page, live_portal_url)

    watch.asks(page.locator("input[data-verb=pause]"), "Pause: the rollout of 1.2.0 on channel stable")
    assert state_of(first) == "running"
    watch.confirm()
    assert state_of(first) == "paused"

    watch.asks(page.locator("input[data-verb=abort]"), "Abort: the rollout of 1.2.0 on channel stable")
    assert state_of(first) == "paused"
    watch.confirm()
    assert state_of(first) == "aborted"

    page.goto(f"{live_portal_url}/admin/releases_app/rollout/{second.pk}/change/")
    watch.asks(page.locator("input[data-verb=rollback]"), "Roll back: the rollout of 1.2.0 on channel edge")
    assert (state_of(second), current_of("edge")) == ("running", "1.2.0")
    watch.confirm()
    assert current_of("edge") == "1.1.0" and state_of(second) not in ("running", "paused")
    assert watch.violations == []


def run_list_action(watch: Watcher, list_path: str, pk, action: str) -> None:
    page = watch.page
    page.goto(f"{watch.base_url}{list_path}")
    page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", action)
    watch.click(page.locator("button[name=index]"))


def test_rollout_and_channel_list_actions_ask_first(live_portal_url, rollouts, browser):
    from releases_app.models import Channel

    page = admin_login(browser, live_portal_url, "/admin/releases_app/channel/", "staff", PASSWORD)
    watch = Watcher(page, live_portal_url)

    run_list_action(watch, "/admin/releases_app/channel/", Channel.objects.get(name="beta").pk, "rollback")
    assert "Roll these channels back" in page.locator("#confirm-question").inner_text()
    assert "beta: 1.1.0 -> 1.0.0" in page.locator("#confirm-objects").inner_text()
    assert current_of("beta") == "1.1.0"
    watch.confirm()
    assert current_of("beta") == "1.0.0"

    rollout = rollouts["gamma"]
    run_list_action(watch, "/admin/releases_app/rollout/", rollout.pk, "abort")
    assert f"rollout {rollout.pk}: 1.2.0 on gamma" in page.locator("#confirm-objects").inner_text()
    assert state_of(rollout) == "running"
    watch.confirm()
    assert state_of(rollout) == "aborted"
    assert watch.violations == []


def dead_jobs(count: int, provider: str) -> list[int]:
    from queueing.models import Job, JobState

    ids = [job.pk for job in make_jobs(count, provider=make_provider(provider))]
    Job.objects.filter(pk__in=ids).update(state=JobState.DEAD, dead_reason="max_attempts")
    return ids


def job_states(ids: list[int]) -> set[str]:
    from queueing.models import Job

    return set(Job.objects.filter(pk__in=ids).values_list("state", flat=True))


@pytest.fixture
def dlq(live_portal_url, staff):
    return dead_jobs(3, "maps"), dead_jobs(2, "dir")


def test_dlq_requeue_all_and_purge_ask_first(live_portal_url, dlq, browser):
    from queueing.models import Job, Provider

    maps, other = dlq
    provider = Provider.objects.get(name="maps").pk
    page = admin_login(browser, live_portal_url, "/admin/queueing/deadjob/", "staff", PASSWORD)
    watch = Watcher(page, live_portal_url)

    # Requeue every job matching the filter: the page names how many; the filter is kept.
    run_list_action(watch, f"/admin/queueing/deadjob/?provider__id__exact={provider}", maps[0], "requeue_matching")
    assert "Requeue all 3 dead job(s)" in page.locator("#confirm-question").inner_text()
    assert job_states(maps + other) == {"dead"}
    watch.confirm()
    assert job_states(maps) == {"queued"} and job_states(other) == {"dead"}

    # Requeue selected: its page asks for a priority first.
    run_list_action(watch, "/admin/queueing/deadjob/", other[0], "requeue")
    assert page.locator("input[name=priority]").is_visible() and job_states(other) == {"dead"}
    watch.click(page.locator("input[type=submit][value=Requeue]"))
    assert job_states(other[:1]) == {"queued"}

    # Purge (Django's own delete confirmation): asked, nothing deleted, then deleted.
    run_list_action(watch, "/admin/queueing/deadjob/", other[1], "delete_selected")
    assert "Are you sure" in page.content() and Job.objects.filter(pk=other[1]).exists()
    watch.click(page.locator("input[type=submit]").last)
    assert not Job.objects.filter(pk=other[1]).exists()
    assert watch.violations == []
