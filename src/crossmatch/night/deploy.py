"""Deployment steps for ``prefect.yaml`` and the work pool, all offline.

A Prefect process worker starts each flow run in its own folder: ``flows/nightly.py``, the
sources, the rules and the warehouse are not there. ``prefect.yaml`` therefore records the
project folder when it is deployed and goes there before each run:

* build step :func:`project_home` (at ``prefect deploy``): the project home
  (``CROSSMATCH_HOME`` if set, else the folder ``prefect deploy`` runs in), as ``directory``;
* pull step :func:`enter_home` (on the worker, before each run): the worker's own
  ``CROSSMATCH_HOME`` if set (a worker on a machine where the project lives elsewhere), else
  the recorded folder; it must hold the flow file, it becomes the working folder and
  ``CROSSMATCH_HOME``, so every relative path of the night resolves there.

:func:`ensure_work_pool` creates the process work pool ``prefect deploy`` needs (``crossmatch
deploy`` calls it, then ``prefect deploy --all``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENTRY = Path("flows") / "nightly.py"


def project_home(directory: str | None = None) -> dict[str, str]:
    """Build step: the project folder to record in the deployment."""
    env = os.environ.get("CROSSMATCH_HOME", "").strip()
    home = Path(directory or env or Path.cwd()).expanduser().resolve()
    if not (home / ENTRY).is_file():
        raise FileNotFoundError(
            f"{home}: no {ENTRY} here. Fix: run `prefect deploy` in the crossmatch project "
            "folder, or set CROSSMATCH_HOME to it."
        )
    return {"directory": str(home)}


def enter_home(directory: str = "") -> dict[str, str]:
    """Pull step: go to the project folder (worker's CROSSMATCH_HOME, else the recorded one)."""
    env = os.environ.get("CROSSMATCH_HOME", "").strip()
    candidates = [p for p in (env, directory) if p]
    for c in candidates:
        home = Path(c).expanduser().resolve()
        if (home / ENTRY).is_file():
            os.chdir(home)
            os.environ["CROSSMATCH_HOME"] = str(home)
            return {"directory": str(home)}
    tried = ", ".join(candidates) or "(none: CROSSMATCH_HOME unset and no folder recorded)"
    raise FileNotFoundError(
        f"crossmatch project folder not found on this worker: tried {tried}. Fix: set "
        f"CROSSMATCH_HOME for the worker to the folder holding {ENTRY}, or deploy again from it."
    )


async def _ensure(name: str, pool_type: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_work_pool(name)
            return False
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))
            return True


def ensure_work_pool(name: str = "crossmatch", pool_type: str = "process") -> bool:
    """Create the work pool if it does not exist; True when it was created."""
    import asyncio

    return asyncio.run(_ensure(name, pool_type))
