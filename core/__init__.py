"""The kernel: what every app may import, importing no app and nothing of the `leadops` project.

Errors of the protocol, strict serializer fields, the JSON parser, monitor events (published on
commit), the GCRA limiter, Redis, monotonic counters, admin helpers, the staff-action audit, one
streaming CSV helper and the PII log filter. See docs/SYSTEM_OVERVIEW.md, "Layers".
"""
