"""``python -m ragfleet.ingestion.cli ingest PATH... --url URL --collection C [--api-key K]``

Uploads files and folders (recursively; only supported types) in batches, then follows the jobs
with a progress bar until every document is done. Exits 1 if any document failed. Works against
the gateway (with an API key) or the ingestion service directly (with ``--tenant``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from ragfleet.common.contracts import TENANT_HEADER
from ragfleet.ingestion.parsers import EXTENSIONS

MEDIA_TYPES = {".pdf": "application/pdf", ".html": "text/html", ".htm": "text/html", ".md": "text/markdown"}


def collect(paths: list[str]) -> Iterator[tuple[str, Path]]:
    """(name sent as the filename, file) for every supported file; names are relative to the folder given."""
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path.name, path
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.suffix.lower() in EXTENSIONS:
                    yield file.relative_to(path).as_posix(), file
        else:
            raise SystemExit(f"no such file or folder: {raw}")


def batches(
    files: list[tuple[str, Path]], max_files: int, max_bytes: int
) -> Iterator[list[tuple[str, Path]]]:
    batch: list[tuple[str, Path]] = []
    size = 0
    for name, file in files:
        file_size = file.stat().st_size
        if batch and (len(batch) >= max_files or size + file_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append((name, file))
        size += file_size
    if batch:
        yield batch


def ingest(args: argparse.Namespace) -> int:
    files = list(collect(args.paths))
    if not files:
        print("nothing to ingest: no .txt, .md, .html or .pdf files found", file=sys.stderr)
        return 1
    headers = {TENANT_HEADER: args.tenant}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    client = httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=args.timeout)
    jobs: list[str] = []
    with tqdm(total=len(files), desc="upload", unit="file") as bar:
        for batch in batches(files, args.batch_files, args.batch_bytes):
            upload = [
                ("files", (name, file.read_bytes(), MEDIA_TYPES.get(file.suffix.lower(), "text/plain")))
                for name, file in batch
            ]
            response = client.post("/v1/documents", params={"collection": args.collection}, files=upload)
            if response.status_code != 202:
                bar.close()
                print(f"upload refused ({response.status_code}): {response.text}", file=sys.stderr)
                return 1
            jobs.append(response.json()["job_id"])
            bar.update(len(batch))

    finished: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(files), desc="ingest", unit="doc") as bar:
        deadline = time.monotonic() + args.wait
        while len(finished) < len(jobs):
            if time.monotonic() > deadline:
                print(f"gave up waiting after {args.wait:.0f}s; jobs: {jobs}", file=sys.stderr)
                return 1
            done = 0
            for job_id in jobs:
                job = finished.get(job_id) or {}
                if not job:
                    # The gateway authorises job reads by collection, so the collection goes along.
                    response = client.get(f"/v1/jobs/{job_id}", params={"collection": args.collection})
                    if response.status_code != 200:
                        bar.close()
                        print(
                            f"cannot read job {job_id} ({response.status_code}): {response.text}",
                            file=sys.stderr,
                        )
                        return 1
                    job = response.json()
                if job.get("state") in ("succeeded", "failed"):
                    finished[job_id] = job
                done += int(job.get("documents_done", 0))
            bar.update(done - bar.n)
            time.sleep(0.3)

    failed = [doc for job in finished.values() for doc in job["documents"] if doc["state"] == "failed"]
    chunks = sum(job["chunks"] for job in finished.values())
    unchanged = sum(1 for job in finished.values() for doc in job["documents"] if doc["state"] == "unchanged")
    print(
        f"{len(files) - len(failed)} documents in collection {args.collection!r} "
        f"({chunks} chunks, {unchanged} unchanged), {len(failed)} failed"
    )
    for doc in failed:
        print(f"  {doc['document_id']}: {doc.get('code')}: {doc.get('error')}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ragfleet.ingestion.cli", description=__doc__.split("\n\n")[1]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest_cmd = commands.add_parser("ingest", help="upload files or folders and wait until they are indexed")
    ingest_cmd.add_argument("paths", nargs="+", metavar="PATH")
    ingest_cmd.add_argument(
        "--url", default="http://127.0.0.1:8030", help="the gateway or the ingestion service"
    )
    ingest_cmd.add_argument("--collection", default="default")
    ingest_cmd.add_argument("--api-key", default=None, help="the gateway's API key")
    ingest_cmd.add_argument("--tenant", default="default", help="tenant header (ingestion service directly)")
    ingest_cmd.add_argument("--batch-files", type=int, default=50, help="files per upload request")
    ingest_cmd.add_argument(
        "--batch-bytes", type=int, default=16 * 1024 * 1024, help="bytes per upload request"
    )
    ingest_cmd.add_argument("--wait", type=float, default=600, help="seconds to wait for the jobs")
    ingest_cmd.add_argument("--timeout", type=float, default=60, help="HTTP timeout in seconds")
    args = parser.parse_args(argv)
    return ingest(args)


if __name__ == "__main__":
    sys.exit(main())
