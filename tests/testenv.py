"""Environment for the test process, set before Django reads its settings.

Loaded as a pytest plugin (pytest.ini's ``-p tests.testenv``) because
pytest-django configures Django before any conftest.py is imported.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Run django-q2 tasks inline in tests unless a test starts a real cluster.
os.environ.setdefault("Q_SYNC", "1")
# Playwright drives a live server from the test thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
