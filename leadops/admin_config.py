"""django.contrib.admin with the operator's site (leadops/admin_site.py) as `admin.site`.

Its own module: `leadops.apps` may declare only the project's AppConfig.
"""

from django.contrib.admin.apps import AdminConfig


class LeadOpsAdminConfig(AdminConfig):
    default_site = "leadops.admin_site.LeadOpsAdminSite"
