"""Admin of the job queue: providers, campaigns (with progress), jobs and their attempts, the DLQ, breakers.

Jobs and attempts change only through `queueing.services`: their pages are read-only and the admin
offers the services as actions. The job and attempt tables grow past a million rows, so their
changelists never count the whole table, and filters read the small related tables only. One module
per page; importing them registers the ModelAdmins.
"""

from queueing.admin import breakers, campaigns, dlq, jobs, providers  # noqa: F401
