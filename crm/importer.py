"""``python -m crm import FILE...``: spreadsheets into a running system through its HTTP API.

Each file becomes an import job on the server (POST /v1/imports, then the file streamed with PUT), which the
customers service runs in batches; this command shows its progress (rows, rate, ETA, rejected so far),
downloads the rejected rows next to the file and prints a summary. Files are taken customers first, then
purchases, then interactions, so every row finds the customer it names. Stopped part way (Ctrl-C), the job
goes on on the server; the same command again attaches to it instead of starting over, and once it is done,
running the file again changes nothing.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tqdm import tqdm

from crm_common.contracts.imports import KINDS, check_mapping, detect_kind
from crm_common.tabular import Table, UnreadableFile

POLL_SECONDS = 0.5
EXIT_OK, EXIT_REJECTED, EXIT_FAILED = 0, 1, 2


class ApiError(Exception):
    pass


@dataclass
class Api:
    base: str
    token: str

    def call(self, method: str, path: str, body=None, data=None, headers=None, raw: bool = False):
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(self.base.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')[:500]}") from None
        except urllib.error.URLError as exc:
            raise ApiError(f"cannot reach {self.base}: {exc.reason}") from None
        return payload if raw else json.loads(payload)


def read_mapping(path: str | None) -> dict:
    """A JSON object {"header": "field"} or a CSV of header,field rows."""
    if not path:
        return {}
    with open(path, encoding="utf-8-sig") as handle:
        text = handle.read()
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError:
        mapping = {row[0].strip(): row[1].strip() for row in csv.reader(text.splitlines()) if len(row) >= 2}
        mapping.pop("header", None)
    return check_mapping(mapping)


def file_kind(path: str, mapping: dict) -> str | None:
    try:
        return detect_kind(Table(path).headers, mapping)
    except (UnreadableFile, ValueError, OSError):
        return None  # the server says what is wrong with it


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(piece)
    return digest.hexdigest()


class ProgressReader:
    """The file as an upload body, moving a bytes bar as it is read."""

    def __init__(self, path: str, bar):
        self.handle, self.bar = open(path, "rb"), bar

    def read(self, size: int = -1) -> bytes:
        piece = self.handle.read(size)
        self.bar.update(len(piece))
        return piece

    def close(self):
        self.handle.close()


def unfinished_job(api: Api, name: str, digest: str, kind: str | None, dry_run: bool) -> dict | None:
    """This file's job that a stopped run left behind (same content, same options), to attach to."""
    for job in api.call("GET", "/v1/imports?limit=200")["items"]:
        if (job["filename"] == name and job["sha256"] == digest and job["dry_run"] == dry_run
                and (kind is None or job["kind"] in (None, kind))
                and job["status"] in ("awaiting_file", "queued", "running")):
            return job
    return None


def import_file(api: Api, path: str, kind: str | None, options: dict, errors_path: str, quiet: bool) -> int:
    name, size, digest = os.path.basename(path), os.path.getsize(path), sha256_of(path)
    job = unfinished_job(api, name, digest, kind, options["dry_run"])
    if job is None:
        job = api.call("POST", "/v1/imports", body={"kind": kind, "filename": name, "sha256": digest, **options})
    if job["status"] == "awaiting_file":
        with tqdm(total=size, unit="B", unit_scale=True, desc=f"upload {name}", disable=quiet) as bar:
            body = ProgressReader(path, bar)
            try:
                job = api.call("PUT", f"/v1/imports/{job['id']}/file", data=body,
                               headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
            finally:
                body.close()
    else:
        print(f"{name}: attached to import {job['id']} ({job['status']}), started before", file=sys.stderr)
    job = follow(api, job, name, quiet)
    if job["rejected"]:
        with open(errors_path, "wb") as out:
            out.write(api.call("GET", f"/v1/imports/{job['id']}/rejections", raw=True))
    print(summary(job, name, errors_path))
    if job["status"] == "failed":
        return EXIT_FAILED
    return EXIT_REJECTED if job["rejected"] else EXIT_OK


def follow(api: Api, job: dict, name: str, quiet: bool) -> dict:
    """Poll the job to its end with a bar: rows, rate, ETA and how many were rejected so far."""
    bar = tqdm(total=job.get("rows_total"), unit=" rows", desc=f"{job.get('kind') or 'import'} {name}",
               disable=quiet)
    try:
        while True:
            job = api.call("GET", f"/v1/imports/{job['id']}")
            if job["rows_total"] is not None and bar.total != job["rows_total"]:
                bar.total = job["rows_total"]
                bar.set_description(f"{job['kind']} {name}")
            bar.update(job["rows_processed"] - bar.n)
            bar.set_postfix(rejected=job["rejected"], refresh=False)
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(POLL_SECONDS)
    finally:
        bar.close()


def summary(job: dict, name: str, errors_path: str) -> str:
    if job["status"] == "failed":
        return f"{name}: failed: {job['error']}"
    verb = "would import" if job["dry_run"] else "imported"
    text = (f"{name}: {job['kind']}, {job['rows_processed']} rows: {verb} {job['imported']}, "
            f"unchanged {job['unchanged']}, rejected {job['rejected']}")
    if job["ignored_columns"]:
        text += f"; ignored columns: {', '.join(job['ignored_columns'])}"
    if job["rejected"]:
        text += f"; rejected rows in {errors_path}"
    return text


def errors_path_for(path: str, errors: str | None, several: bool) -> str:
    if errors and not several:
        return errors
    stem = os.path.basename(path) + ".rejected.csv"
    if errors:
        os.makedirs(errors, exist_ok=True)
        return os.path.join(errors, stem)
    return path + ".rejected.csv"


def run(args) -> int:
    if not args.token:
        sys.exit("give --token TOKEN (or set CRM_TOKEN); python -m crm token makes one for a manager or admin")
    for path in args.files:
        if not os.path.isfile(path):
            sys.exit(f"no such file: {path}")
    try:
        mapping = read_mapping(args.mapping)
    except (OSError, ValueError) as exc:
        sys.exit(f"--mapping {args.mapping}: {exc}")
    api = Api(args.api, args.token)
    kinds = {path: args.kind or file_kind(path, mapping) for path in args.files}
    order = sorted(args.files, key=lambda p: KINDS.index(kinds[p]) if kinds[p] else len(KINDS))
    options = {"dry_run": args.dry_run, "mapping": mapping, "timezone": args.timezone}
    worst = EXIT_OK
    for path in order:
        try:
            status = import_file(api, path, kinds[path] if args.kind else None, options,
                                 errors_path_for(path, args.errors, len(order) > 1), args.quiet)
        except ApiError as exc:
            print(f"{os.path.basename(path)}: {exc}", file=sys.stderr)
            status = EXIT_FAILED
        except KeyboardInterrupt:
            print("\nstopped; the import goes on on the server. Run the same command again to follow it.",
                  file=sys.stderr)
            return 130
        worst = max(worst, status)
    return worst


def add_parser(commands) -> None:
    from crm_common.config import env
    parser = commands.add_parser("import", help="import customers, purchases, interactions or pipeline stages from CSV / .xlsx files")
    parser.add_argument("files", nargs="+", metavar="FILE", help=".csv (any delimiter; UTF-8 or GBK) or .xlsx")
    parser.add_argument("--api", default=env("CRM_API", "http://127.0.0.1:8000"), help="the system's address")
    parser.add_argument("--token", default=env("CRM_TOKEN"), help="a manager's or admin's API token")
    parser.add_argument("--kind", choices=KINDS, help="what the files hold (default: told from the headers)")
    parser.add_argument("--dry-run", action="store_true", help="check every row, import nothing, write the report")
    parser.add_argument("--errors", help="where the rejected rows go (default FILE.rejected.csv)")
    parser.add_argument("--mapping", help="JSON {\"header\": \"field\"} or CSV header,field for other column names")
    parser.add_argument("--timezone", default=env("CRM_IMPORT_TIMEZONE", "UTC"),
                        help="time zone of dates written without one, e.g. Asia/Shanghai (default UTC)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=lambda args: sys.exit(run(args)))
