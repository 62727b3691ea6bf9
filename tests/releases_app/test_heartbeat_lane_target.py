"""The heartbeat answered on the loop (workers_mgmt/heartbeat_lane.py) reads the update target in its
UPDATE as the view does, on its own connection: the same `update_target`, pinned or not."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_settings

from tests.workers_mgmt.test_heartbeat_lane import _body, _run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (django_settings.REDIS_URL and django_settings.IS_POSTGRES),
                       reason="the lane runs only on PostgreSQL + Redis (the CI leg with both runs these)"),
]


def test_the_lanes_update_target_is_the_views(stable_on, publish):
    from releases_app.models import Channel
    from releases_app.services import worker_pin_set
    from tests.factories import make_worker
    from workers_mgmt.models import Worker

    stable_on("1.2.0")
    issued = make_worker(worker_id="w-target", channel="stable")[1]

    async def scenario(stack):
        by_view = await stack.post(issued, _body("1.0.0"))
        by_lane = await stack.post(issued, _body("1.0.0"))
        return stack.to_django, by_view, by_lane

    to_django, by_view, by_lane = _run(scenario)
    expected = {"version": "1.2.0", "sequence": Channel.objects.get(name="stable").sequence}
    assert to_django == 1
    assert json.loads(by_view[2])["update_target"] == json.loads(by_lane[2])["update_target"] == expected

    publish("1.1.0")
    worker_pin_set(worker=Worker.objects.get(pk="w-target"), version="1.1.0", actor="tests")

    async def pinned(stack):
        return stack.to_django, await stack.post(issued, _body("1.0.0"))

    to_django, by_lane = _run(pinned)
    assert to_django == 0 and json.loads(by_lane[2])["update_target"]["version"] == "1.1.0"
