"""Real services for the tests, started on 127.0.0.1 and stopped by the fixtures.

One module per service; each start function returns a handle with ``stop()``.
"""
