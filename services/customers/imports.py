"""Bulk import jobs: created, given their file, run in batches by whichever replica holds the lease, resumed.

The file is stored in the database in pieces, so any replica can run a job and take it over when the one
running it stops; each batch of rows commits with the job's checkpoint (the last row applied), so a resumed
job starts exactly after it. Rows are applied by services.customers.import_rows.
"""
from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, or_, select, update

from crm_common.auth import Principal
from crm_common.contracts.imports import detect_kind, match_headers
from crm_common.db import utc
from crm_common.errors import Conflict, CrmError, NotFound
from crm_common.tabular import Table, UnreadableFile, csv_text
from services.customers import import_checks, import_rows
from services.customers.models import import_chunks, import_jobs, import_rejections

CHUNK_BYTES = 1024 * 1024
BATCH_ROWS = 500
LEASE = timedelta(seconds=120)
REPLICA = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
COUNTERS = ("imported", "unchanged", "rejected")


class LostLease(Exception):
    """Another replica took the job over (this one was too slow to renew its lease): stop, it goes on."""


def _wall() -> datetime:
    return datetime.now(timezone.utc)  # leases are real time even when the service clock is frozen


# ---------------------------------------------------------------- commands (HTTP)

def create_job(uow, actor: Principal, data: dict, now: datetime) -> dict:
    actor.require("admin", "manager")
    job = {"id": f"imp_{uuid.uuid4().hex[:20]}", "kind": data.get("kind"), "filename": data["filename"],
           "status": "awaiting_file", "dry_run": data["dry_run"], "sha256": data.get("sha256"),
           "actor_id": actor.user_id, "actor_role": actor.role, "actor_team": actor.team, "size_bytes": 0, "rows_done": 0,
           "imported": 0, "unchanged": 0, "rejected": 0, "ignored_columns": [],
           "options": {"mapping": data.get("mapping") or {}, "timezone": data["timezone"]},
           "created_at": now, "updated_at": now}
    uow.session.execute(insert(import_jobs).values(**job))
    uow.audit(actor, "import.created", "import", job["id"], {k: job[k] for k in ("kind", "filename", "dry_run")})
    return job_view(job)


def store_file(store, actor: Principal, job_id: str, stream, now: datetime) -> dict:
    """The request body, piece by piece, one commit each, so a large upload holds no lock for long."""
    job = store.run(_job_awaiting_file, actor, job_id)
    digest, size, seq = hashlib.sha256(), 0, 0
    store.run(lambda uow: uow.session.execute(delete(import_chunks).where(import_chunks.c.job_id == job_id)))
    while True:
        piece = stream.read(CHUNK_BYTES)
        if not piece:
            break
        digest.update(piece)
        size += len(piece)
        seq += 1
        store.run(lambda uow, s=seq, p=piece: uow.session.execute(insert(import_chunks).values(
            job_id=job_id, seq=s, data=p)))
    if size == 0:
        raise CrmError("the file is empty", field="file")
    if job.sha256 and job.sha256 != digest.hexdigest():
        store.run(lambda uow: uow.session.execute(delete(import_chunks).where(import_chunks.c.job_id == job_id)))
        raise CrmError(f"the file received has SHA-256 {digest.hexdigest()}, not {job.sha256} as declared; "
                       "upload it again", field="file")

    def queue(uow):
        uow.session.execute(update(import_jobs).where(import_jobs.c.id == job_id).values(
            status="queued", size_bytes=size, sha256=digest.hexdigest(), updated_at=now))
        uow.audit(actor, "import.uploaded", "import", job_id, {"size_bytes": size, "sha256": digest.hexdigest()})
        return job_view(_load(uow, actor, job_id))
    return store.run(queue)


def _job_awaiting_file(uow, actor: Principal, job_id: str):
    job = _load(uow, actor, job_id)
    if job.status != "awaiting_file":
        raise Conflict(f"import {job_id} already has its file ({job.status})", field="file")
    return job


# ---------------------------------------------------------------- queries (HTTP)

def _load(uow, actor: Principal, job_id: str):
    actor.require("admin", "manager")  # before the lookup: a rep learns nothing about any job
    row = uow.session.execute(select(import_jobs).where(import_jobs.c.id == job_id)).first()
    if row is None or not _can_see(actor, row):
        raise NotFound(f"import {job_id} not found")
    return row


def _can_see(actor: Principal, row) -> bool:
    """An admin sees every job, a manager their own and their team's."""
    return actor.role == "admin" or row.actor_id == actor.user_id or (
        row.actor_team is not None and row.actor_team == actor.team)


def get_job(uow, actor: Principal, job_id: str) -> dict:
    return job_view(_load(uow, actor, job_id))


def list_jobs(uow, actor: Principal, limit: int) -> dict:
    actor.require("admin", "manager")
    query = select(import_jobs).order_by(import_jobs.c.created_at.desc(), import_jobs.c.id.desc()).limit(limit)
    if actor.role == "manager":
        query = query.where(or_(import_jobs.c.actor_id == actor.user_id, import_jobs.c.actor_team == actor.team))
    return {"items": [job_view(r) for r in uow.session.execute(query)]}


def rejections_page(uow, actor: Principal, job_id: str, after_id: int, size: int = 5000) -> list:
    _load(uow, actor, job_id)
    return uow.session.execute(select(import_rejections).where(
        import_rejections.c.job_id == job_id, import_rejections.c.id > after_id)
        .order_by(import_rejections.c.id).limit(size)).all()


def rejections_csv(pages) -> bytes:
    """Rejected rows as CSV that Excel opens with its Chinese intact (UTF-8 with a byte order mark)."""
    yield ("\ufeff" + csv_text([["row", "column", "value", "reason"]])).encode()
    for page in pages:
        yield csv_text([[r.row, r.column, r.value, r.reason] for r in page]).encode()


def job_view(job) -> dict:
    job = job if isinstance(job, dict) else dict(job._mapping)
    processed = sum(job.get(k) or 0 for k in COUNTERS)
    return {"id": job["id"], "kind": job["kind"], "filename": job["filename"], "status": job["status"],
            "dry_run": job["dry_run"], "size_bytes": job.get("size_bytes") or 0, "sha256": job.get("sha256"),
            "rows_total": job.get("rows_total"), "rows_processed": processed,
            **{k: job.get(k) or 0 for k in COUNTERS}, "ignored_columns": job.get("ignored_columns") or [],
            "error": job.get("error"), "created_by": job["actor_id"], "created_at": utc(job["created_at"]),
            "finished_at": utc(job.get("finished_at")),
            "rejections": f"/v1/imports/{job['id']}/rejections"}


# ---------------------------------------------------------------- the job runner (timer)

def claim_next(store):
    """A queued job, or a running one whose replica stopped renewing its lease: leased to this replica."""
    def claim(uow):
        now = _wall()
        row = uow.session.execute(select(import_jobs.c.id, import_jobs.c.lease_until).where(
            import_jobs.c.status.in_(("queued", "running")),
            or_(import_jobs.c.lease_until.is_(None), import_jobs.c.lease_until < now))
            .order_by(import_jobs.c.created_at).limit(1)).first()
        if row is None:
            return None
        match = import_jobs.c.lease_until.is_(None) if row.lease_until is None else \
            import_jobs.c.lease_until == row.lease_until
        taken = uow.session.execute(update(import_jobs).where(import_jobs.c.id == row.id, match).values(
            status="running", lease_owner=REPLICA, lease_until=now + LEASE)).rowcount
        return uow.session.execute(select(import_jobs).where(import_jobs.c.id == row.id)).first() if taken else None
    return store.run(claim)


def run(store, job, clock, policy, followups) -> None:
    """Run a leased job to its end, batch by batch; a file or header problem fails the job with its reason."""
    with tempfile.TemporaryDirectory(prefix="crm-import-") as scratch:
        path = os.path.join(scratch, "upload")
        _write_file(store, job.id, path)
        try:
            table = Table(path)
            kind = job.kind or detect_kind(table.headers, job.options.get("mapping"))
            match = match_headers(table.headers, kind, job.options.get("mapping"))
            _check_headers(match)
            zone = ZoneInfo(job.options.get("timezone") or "UTC")
        except (UnreadableFile, ValueError) as exc:
            return _finish(store, job.id, "failed", error=str(exc))
        total = job.rows_total if job.rows_total is not None else table.count()
        store.run(_progress, job.id, {"kind": kind, "rows_total": total, "ignored_columns": list(match.ignored)})
        context = import_checks.Context(job_id=job.id, kind=kind, dry_run=job.dry_run, zone=zone, policy=policy,
                                      actor=Principal(job.actor_id, job.actor_role, job.actor_team),
                                      headers={f: table.headers[i] for i, f in match.fields.items()},
                                      followups=followups)
        batch = []
        try:
            for number, cells in table.rows():
                if number <= job.rows_done:
                    continue  # applied before this replica took over
                batch.append((number, {field: cells[i] if i < len(cells) else None
                                       for i, field in match.fields.items()}))
                if len(batch) == BATCH_ROWS:
                    _apply(store, context, batch, clock.now())
                    batch = []
            if batch:
                _apply(store, context, batch, clock.now())
        except LostLease:
            return None
        except UnreadableFile as exc:  # damaged past the rows applied so far: those stay, the job says where
            return _finish(store, job.id, "failed", error=str(exc))
    _finish(store, job.id, "done")


def _check_headers(match) -> None:
    if match.missing:
        raise ValueError(f"the file has no column for {', '.join(match.missing)} (required in a {match.kind} file; "
                         "name the column in a mapping if it has another header)")
    if match.duplicated:
        raise ValueError(f"two columns are {', '.join(match.duplicated)}; keep one or map the other to '-'")


def _apply(store, context, batch, now) -> None:
    results = import_rows.prepare(store, context, batch, now)  # interactions: applied by followups here

    def commit(uow):
        job = uow.session.execute(select(import_jobs).where(import_jobs.c.id == context.job_id)
                                  .with_for_update()).first()
        if job.lease_owner != REPLICA:
            raise LostLease(context.job_id)
        counts = import_rows.apply(uow, context, batch, results, now)
        uow.session.execute(update(import_jobs).where(import_jobs.c.id == context.job_id).values(
            rows_done=batch[-1][0], lease_until=_wall() + LEASE, updated_at=_wall(),
            **{k: getattr(job, k) + counts.get(k, 0) for k in COUNTERS}))
    store.run(commit)


def _progress(uow, job_id: str, values: dict) -> None:
    uow.session.execute(update(import_jobs).where(import_jobs.c.id == job_id).values(**values, updated_at=_wall()))


def _finish(store, job_id: str, status: str, error: str | None = None) -> None:
    """The job's end; its file goes (the report and the figures stay)."""
    def finish(uow):
        _progress(uow, job_id, {"status": status, "error": error, "finished_at": _wall(), "lease_owner": None,
                                "lease_until": None})
        uow.session.execute(delete(import_chunks).where(import_chunks.c.job_id == job_id))
    store.run(finish)


def _write_file(store, job_id: str, path: str) -> None:
    """The stored pieces into a scratch file, one piece in memory at a time."""
    seqs = store.run(lambda uow: list(uow.session.execute(select(import_chunks.c.seq).where(
        import_chunks.c.job_id == job_id).order_by(import_chunks.c.seq)).scalars()))
    with open(path, "wb") as out:
        for seq in seqs:
            out.write(store.run(lambda uow, s=seq: uow.session.execute(select(import_chunks.c.data).where(
                import_chunks.c.job_id == job_id, import_chunks.c.seq == s)).scalar_one()))
