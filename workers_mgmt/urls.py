from django.urls import path

from workers_mgmt.api import ConfigView, EnrollView, HeartbeatView

urlpatterns = [
    path("heartbeat", HeartbeatView.as_view(), name="heartbeat"),
    path("config", ConfigView.as_view(), name="config"),
    path("enroll", EnrollView.as_view(), name="enroll"),
]
