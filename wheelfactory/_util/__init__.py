"""Small utilities every stage shares, one implementation each; nothing here knows a stage.

Owns: ``proc`` (running a command streamed into a log; git), ``fs`` (atomic
writes, sha256, locks, safe tree deletion), ``venv`` (the bare-venv
environment), ``http`` (one requests session with urllib3 retries),
``simple_api`` (the PEP 503/691 Simple API client), ``github`` (the GitHub REST
client: auth, pagination, rate limits, error text; releases and runners).

May import: ``errors`` and ``ui`` only (and third-party libraries).
"""
