"""URL map: admin, the worker protocol under /api/v1, the OpenAPI schema."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from leadops import live, metrics, monitor, views
from leadops.failures import cluster_remedy_view, clusters_view, dead_job_lineage_view, lead_lineage_view
from leadops.readiness import readiness_view

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/monitor/", admin.site.admin_view(monitor.monitor_view), name="leadops-monitor"),
    path("admin/monitor/snapshot/", admin.site.admin_view(monitor.monitor_snapshot_view),
         name="leadops-monitor-snapshot"),
    path("admin/monitor/workers/", admin.site.admin_view(monitor.monitor_workers_view),
         name="leadops-monitor-workers"),
    path("admin/readiness/", admin.site.admin_view(readiness_view), name="leadops-readiness"),
    path("admin/failures/clusters/", admin.site.admin_view(clusters_view), name="leadops-failure-clusters"),
    path("admin/failures/clusters/<str:key>/remedy/", admin.site.admin_view(cluster_remedy_view),
         name="leadops-cluster-remedy"),
    path("admin/lineage/lead/<int:lead_id>/", admin.site.admin_view(lead_lineage_view),
         name="leadops-lead-lineage"),
    path("admin/lineage/dead-job/<int:job_id>/", admin.site.admin_view(dead_job_lineage_view),
         name="leadops-dead-job-lineage"),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/v1/monitor/events", live.monitor_events_sse, name="monitor-events"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("workers_mgmt.urls")),
    path("api/v1/", include("queueing.urls")),
    path("api/v1/", include("ingestion.urls")),
    path("api/v1/", include("releases_app.urls")),
]

handler404 = "leadops.views.not_found"
handler500 = "leadops.views.server_error"
