"""Project-wide test settings.

Prefect must never try to reach the network (no telemetry) and must not touch the developer's own
``~/.prefect``: every test session gets a fresh PREFECT_HOME, and the temporary server gets the
start-up time it needs on a 2-core machine.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="crossmatch-prefect-"))
