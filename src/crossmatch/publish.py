"""A night's results built apart and published in one step; one run at a time per warehouse.

``with night_build(warehouse) as build:`` takes the run lock, copies the published warehouse to a
build file beside it (``.<name>.night-<run>.duckdb``) and yields that path: every stage of the
night (ingest, resolve, kinship, detect) writes there. When the block ends without an exception
the build is checkpointed, flushed to disk and renamed over the published file (``os.replace``:
atomic on one file system), then the lock is released. On an exception, or a ``kill -9`` at any
moment, the published file is never touched: readers (an analyst's notebook, ``crossmatch
clues``) keep the previous night's results, and the next run removes the dead build and starts
again from the published file. The review store (``*.review.duckdb``, verdicts) is a separate
file no build touches; sync the night's clues into it *after* publishing.

The run lock is ``<warehouse>.lock``: an ``flock`` held for the whole run, its content naming the
holder (pid, host, start, run id). A second run on the same warehouse refuses at once with
:class:`RunLocked` naming the running one. A killed run's lock is released by the kernel, so its
file still names a holder but no one holds it: the next run recognises it as stale
(:attr:`NightBuild.stale_lock`), says so, and takes over.

``nothing_to_do(raw, sources, rules, warehouse)`` says, without writing anything and without the
lock, whether a night would change nothing: the same raw files (content hash and mapping digest)
as the published ingest, identity, kinship and rules computed from exactly those, and the latest
detect run synced into the review store.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from crossmatch import warehouse as wh_mod
from crossmatch.detect.reuse import detect_inputs
from crossmatch.detect.rule_runner import kinship_fingerprint
from crossmatch.errors import CrossmatchError, ExitCode, WarehouseError
from crossmatch.ingest import raw_staging as stage
from crossmatch.ingest.pipeline import assemble, expand_files
from crossmatch.review.store import store_path
from crossmatch.spec.sources import load_sources

log = logging.getLogger(__name__)


class RunLocked(CrossmatchError):
    """Another night run holds the warehouse; the message names it (exit code 5)."""

    exit_code = ExitCode.WAREHOUSE

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def lock_path(warehouse: str | Path) -> Path:
    return Path(str(warehouse) + ".lock")


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
        f"{holder.get('started', '?')}"
        + (f", run {holder['run_id']}" if holder.get("run_id") else "")
    )


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    if not data.strip():
        return {}
    try:
        out = json.loads(data.decode("utf-8", "replace"))
        return out if isinstance(out, dict) else {"raw": data[:200].decode("utf-8", "replace")}
    except ValueError:
        return {"raw": data[:200].decode("utf-8", "replace")}


def _pid_alive(pid: object) -> bool | None:
    """True / False for a pid of this host, None when unknown."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunLock:
    """The held run lock (see the module docstring); release with :meth:`release`."""

    path: Path
    fd: int
    holder: dict
    stale: dict | None = None  # the holder a killed run left in the file, if any

    def release(self) -> None:
        if self.fd < 0:
            return
        with suppress(OSError):
            os.ftruncate(self.fd, 0)  # an empty file: nobody holds it, nothing stale
        with suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def acquire_lock(warehouse: str | Path, run_id: str = "") -> RunLock:
    """Take the run lock of ``warehouse`` or raise :class:`RunLocked` at once (never waits)."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        who = _describe(holder) if holder else "a process that has not written its name yet"
        raise RunLocked(
            f"{warehouse}: another crossmatch night is running ({who}). Fix: wait for it to "
            f"finish (its lock is {path}); a run that was killed releases it by itself",
            holder,
        ) from None
    previous = _read_holder(fd)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "run_id": run_id,
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)
    lock = RunLock(path, fd, holder, stale=previous or None)
    if previous:
        alive = _pid_alive(previous.get("pid")) if previous.get("host") == holder["host"] else None
        state = {True: "pid reused", False: "process gone", None: "other host"}[alive]
        log.warning(
            "%s: stale run lock from a run that did not finish (%s; %s): taken over",
            warehouse,
            _describe(previous),
            state,
        )
    return lock


@contextmanager
def run_lock(warehouse: str | Path, run_id: str = "") -> Iterator[RunLock]:
    """``with run_lock(wh):`` hold the run lock for the block (RunLocked if another holds it)."""
    lock = acquire_lock(warehouse, run_id)
    try:
        yield lock
    finally:
        lock.release()


# ----------------------------------------------------------------------------- the build


@dataclass
class NightBuild:
    """What :func:`night_build` yields: write the night to ``path``; ``published`` is the
    warehouse it replaces on success."""

    path: Path
    published: Path
    run_id: str
    lock: RunLock
    stale_lock: dict | None = None
    removed_builds: list[str] = field(default_factory=list)
    copy_seconds: float = 0.0
    publish_seconds: float = 0.0

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _build_glob(warehouse: Path) -> str:
    return f".{warehouse.name}.night-*"


def _fsync_dir(d: Path) -> None:
    with suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: Path, dst: Path) -> None:
    """Copy a file fast (a reflink or copy_file_range where the file system offers it)."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        try:
            done = 0
            while done < size:
                n = os.copy_file_range(fi.fileno(), fo.fileno(), size - done)
                if n == 0:
                    break
                done += n
            if done != size:
                raise OSError("short copy")
        except (OSError, AttributeError):
            fi.seek(0)
            fo.seek(0)
            fo.truncate()
            shutil.copyfileobj(fi, fo, 16 << 20)


def _checkpoint(path: Path) -> None:
    """Fold the build's WAL into the file (DuckDB does it on a clean close; make sure)."""
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()


@contextmanager
def night_build(
    warehouse: str | Path, *, workspace: str | Path | None = None, run_id: str | None = None
) -> Iterator[NightBuild]:
    """Hold the run lock, yield a build copy of ``warehouse``, publish it atomically on success.

    ``workspace``: the folder for the build file (default: the warehouse's folder). On another
    file system than the warehouse the finished build is first copied beside the warehouse, so
    that the publishing step stays one rename. Connections to the build must be closed when the
    block ends. Raises :class:`RunLocked` when another run holds the warehouse.
    """
    wh = Path(warehouse)
    run_id = run_id or dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    lock = acquire_lock(wh, run_id)
    try:
        wh.parent.mkdir(parents=True, exist_ok=True)
        where = Path(workspace) if workspace else wh.parent
        where.mkdir(parents=True, exist_ok=True)
        removed = []
        for d in {wh.parent, where}:  # builds of killed runs: dead, never published
            for p in sorted(d.glob(_build_glob(wh))):
                with suppress(OSError):
                    p.unlink()
                    removed.append(p.name)
        if removed:
            log.warning("removed %d unfinished build file(s): %s", len(removed), removed)
        build = where / f".{wh.name}.night-{run_id}.duckdb"
        t = time.perf_counter()
        if wh.exists():
            _copy(wh, build)
            wal = Path(str(wh) + ".wal")
            if wal.exists():  # committed work not yet checkpointed belongs to the copy too
                _copy(wal, Path(str(build) + ".wal"))
        nb = NightBuild(build, wh, run_id, lock, stale_lock=lock.stale, removed_builds=removed)
        nb.copy_seconds = time.perf_counter() - t
        try:
            yield nb
        except BaseException:
            for p in (build, Path(str(build) + ".wal")):
                with suppress(OSError):
                    p.unlink()
            raise
        t = time.perf_counter()
        publish(build, wh)
        nb.publish_seconds = time.perf_counter() - t
    finally:
        lock.release()


def publish(build: Path, warehouse: Path) -> None:
    """Make ``build`` the published ``warehouse`` in one rename (after a checkpoint and fsync)."""
    if not build.exists():
        raise WarehouseError(f"{build}: the night's build file is gone; nothing published")
    _checkpoint(build)
    bwal = Path(str(build) + ".wal")
    if bwal.exists():
        raise WarehouseError(f"{build}: still has a WAL after CHECKPOINT (a connection open?)")
    if build.stat().st_dev != warehouse.parent.stat().st_dev:
        near = warehouse.parent / (build.name + ".publish")
        _copy(build, near)
        build.unlink()
        build = near
    _fsync_file(build)
    # a WAL of the published file belongs to the old file: the build already holds its content
    # (copied at the start under the lock); replayed on the new file it would corrupt it
    wal = Path(str(warehouse) + ".wal")
    if wal.exists():
        wal.unlink()
    os.replace(build, warehouse)
    _fsync_dir(warehouse.parent)
    log.info("published %s", warehouse)


# ----------------------------------------------------------------------------- nothing to do


@dataclass
class Unchanged:
    """The answer of :func:`nothing_to_do`: ``unchanged`` True when a night would change
    nothing; otherwise ``reasons`` says what changed (the first few)."""

    unchanged: bool
    reasons: list[str] = field(default_factory=list)
    detect_run: str | None = None

    def __bool__(self) -> bool:
        return self.unchanged

    def render(self) -> str:
        if self.unchanged:
            return (
                "nothing changed since the last night (same files, mappings and rules; run "
                f"{self.detect_run} is current): nothing to do"
            )
        return "changed: " + "; ".join(self.reasons)


def _raw_state(raw: Path, sources: str | Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, file) -> (content hash, mapping digest) of the files an ingest would read."""
    specs = load_sources(sources)
    units = assemble.plan(specs, specs).units
    out = {}
    for spec in units:
        for p in expand_files(spec, raw):
            rel = p.relative_to(raw).as_posix()
            out[(spec.id, rel)] = (stage.scan_file(p, lines=False).sha256, spec.digest)
    return out


def nothing_to_do(
    raw: str | Path,
    sources: str | Path,
    rules: str | Path,
    warehouse: str | Path,
    *,
    max_reasons: int = 5,
    missing_before: Collection[str] = (),
) -> Unchanged:
    """Whether tonight's run would change nothing (cheap: hashes the raw files, reads the
    published warehouse read-only; never writes, never takes the lock).

    ``missing_before``: sources whose export was already missing on the last night; their
    files still being absent is no change (the night would keep the same data, say the same
    gap). A file of such a source that is present again is a change."""

    wh = Path(warehouse)
    if not wh.exists():
        return Unchanged(False, [f"{wh}: no published warehouse yet"])
    reasons: list[str] = []
    try:
        con = wh_mod.connect(wh, read_only=True)
    except WarehouseError as exc:
        return Unchanged(False, [str(exc)])
    try:
        if not wh_mod._has_table(con, "ingest_file"):
            return Unchanged(False, ["nothing ingested yet"])
        have = {
            (r[0], r[1]): (r[2], r[3] or "")
            for r in con.execute(
                "SELECT source, file, hash, spec_digest FROM ingest_file WHERE status = 'ok'"
            ).fetchall()
        }
        failed = con.execute(
            "SELECT count(*) FROM (SELECT source, file, arg_max(status, loaded_at) AS s "
            "FROM ingest_file GROUP BY ALL) WHERE s NOT IN ('ok', 'replaced')"
        ).fetchone()[0]  # type: ignore[index]
        now = _raw_state(Path(raw), sources)
        present = {k[0] for k in now}
        gone_again = {s for s in missing_before if s not in present}
        reasons += [f"{s}: its export is present again" for s in sorted(set(missing_before) & present)]
        for key in sorted(set(now) | set(have)):
            if key not in now and key[0] in gone_again:
                continue  # missing last night too: the same gap, the same data kept
            if key not in have:
                reasons.append(f"{key[1]}: new file ({key[0]})")
            elif key not in now:
                reasons.append(f"{key[1]}: loaded earlier, not in {raw} now ({key[0]})")
            elif now[key][0] != have[key][0]:
                reasons.append(f"{key[1]}: content changed ({key[0]})")
            elif now[key][1] != have[key][1]:
                reasons.append(f"{key[1]}: its mapping changed ({key[0]})")
            if len(reasons) >= max_reasons:
                break
        if failed and not reasons:
            reasons.append(f"{failed} file(s) failed last time: try them again")
        fp = wh_mod.ingest_fingerprint(con)
        res = wh_mod.stage_state(con, "resolve")
        if res is None or res[0] != fp:
            reasons.append("identity not computed from the ingested files")
        kin = wh_mod.stage_state(con, "kinship")
        if kin is None or kin[0] != kinship_fingerprint(con):
            reasons.append("kinship not built from the current identity")
        det = wh_mod.stage_state(con, "detect")
        want = detect_inputs(con, rules)
        if det is None or det[0] != want:
            reasons.append("rules or their inputs changed since the last detect run")
        last = (
            con.execute(
                "SELECT run_id FROM detect_run WHERE status = 'finished' "
                "ORDER BY finished_at DESC LIMIT 1"
            ).fetchone()
            if wh_mod._has_table(con, "detect_run")
            else None
        )
        run = last[0] if last else None
        if run is None:
            reasons.append("no finished detect run")
    finally:
        con.close()
    if run is not None and not reasons:
        store = store_path(wh)
        synced = None
        if store.exists():
            try:
                s = duckdb.connect(str(store), read_only=True)
                try:
                    row = s.execute(
                        "SELECT count(*) FROM review_run WHERE run_id = ?", [run]
                    ).fetchone()
                    synced = bool(row and row[0])
                finally:
                    s.close()
            except duckdb.Error:
                synced = None
        if not synced:
            reasons.append(f"detect run {run} not synced into the review store {store.name}")
    return Unchanged(not reasons, reasons[:max_reasons], run)
