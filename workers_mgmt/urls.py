from django.urls import path

from workers_mgmt.api import ConfigView, EnrollView
from workers_mgmt.heartbeat import heartbeat_view

urlpatterns = [
    # Without DRF's per-request machinery; same answers (workers_mgmt/heartbeat.py).
    path("heartbeat", heartbeat_view, name="heartbeat"),
    path("config", ConfigView.as_view(), name="config"),
    path("enroll", EnrollView.as_view(), name="enroll"),
]
