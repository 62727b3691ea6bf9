"""Benchmarks of LeadOps (`make bench`): the job path and ingestion through the signed HTTP API,
beside a raw-SQL ceiling and Procrastinate as the peer, on the local PostgreSQL. See
docs/PERFORMANCE.md."""
