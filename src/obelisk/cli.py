"""The ``obelisk`` command: parse arguments, call the server or the REST API — nothing else."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from obelisk.errors import ConfigurationError

app = typer.Typer(add_completion=False, help="Obelisk, a DICOM server speaking Orthanc's REST API.")
console = Console(stderr=True)

UrlOption = Annotated[str, typer.Option("--url", help="Base URL of the server.")]
AuthOption = Annotated[
    str | None, typer.Option("--auth", help="user:password for HTTP Basic authentication.")
]


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Orthanc configuration file or folder.")
    ] = None,
    http_port: Annotated[int | None, typer.Option("--http-port")] = None,
    dicom_port: Annotated[int | None, typer.Option("--dicom-port")] = None,
    storage: Annotated[
        Path | None, typer.Option("--storage", help="StorageDirectory (overrides the file).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose")] = False,
    no_jobs: Annotated[
        bool, typer.Option("--no-jobs", help="Start without loading the saved jobs (forgets them).")
    ] = False,
) -> None:
    """Start the server (default: SQLite + ./obelisk-data, HTTP 8042, DICOM 4242)."""
    from obelisk.config import load_settings
    from obelisk.server import serve as run_server

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
    )
    overrides: dict[str, Any] = {}
    if http_port is not None:
        overrides["HttpPort"] = http_port
    if dicom_port is not None:
        overrides["DicomPort"] = dicom_port
    if storage is not None:
        overrides["StorageDirectory"] = str(storage.resolve())
    try:
        settings = load_settings(config, overrides)
        if no_jobs:
            settings.obelisk["LoadSavedJobs"] = False
        restart = run_server(settings)
    except ConfigurationError as exc:
        console.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if restart:  # POST /tools/reset: the same command again, in this process (same PID)
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "obelisk", *sys.argv[1:]])


def _client(url: str, auth: str | None) -> httpx.Client:
    credentials = None
    if auth:
        user, _, password = auth.partition(":")
        credentials = (user, password)
    return httpx.Client(base_url=url.rstrip("/"), auth=credentials, timeout=120)


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            console.print(f"[yellow]Skipping {path}: not found[/yellow]")
    return files


@app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, folders or ZIP archives.")],
    url: UrlOption = "http://127.0.0.1:8042",
    auth: AuthOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel uploads.")] = 4,
) -> None:
    """Upload DICOM files, folders and ZIPs to a server through POST /instances."""
    files = _collect(paths)
    outcomes: Counter[str] = Counter()
    rejected: list[tuple[Path, str]] = []

    with _client(url, auth) as client, Progress(console=console) as progress:
        task = progress.add_task("Uploading", total=len(files))

        def send(path: Path) -> tuple[Path, list[str], str | None]:
            response = client.post("/instances", content=path.read_bytes())
            if response.status_code != 200:
                try:
                    reason = response.json().get("Message", response.text)
                except ValueError:
                    reason = response.text or f"HTTP {response.status_code}"
                return path, [], reason
            body = response.json()
            answers = body if isinstance(body, list) else [body]
            return path, [a["Status"] for a in answers], None

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for path, statuses, reason in pool.map(send, files):
                if reason is not None:
                    rejected.append((path, reason))
                outcomes.update(statuses)
                progress.advance(task)

    table = Table(title="Upload summary")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("stored", str(outcomes["Success"]))
    table.add_row("already stored", str(outcomes["AlreadyStored"]))
    table.add_row("filtered out", str(outcomes["FilteredOut"]))
    table.add_row("rejected", str(len(rejected)))
    console.print(table)
    for path, reason in rejected:
        console.print(f"  [red]rejected[/red] {path}: {reason}")
    if rejected:
        raise typer.Exit(1)


@app.command()
def find(
    query: Annotated[
        list[str], typer.Argument(help="Tag=value pairs, e.g. PatientName='DOE*' StudyDate=2020-")
    ],
    level: Annotated[str, typer.Option("--level", "-l")] = "Study",
    url: UrlOption = "http://127.0.0.1:8042",
    auth: AuthOption = None,
    expand: Annotated[bool, typer.Option("--expand")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 0,
) -> None:
    """Query /tools/find and print the answer as JSON."""
    constraints: dict[str, str] = {}
    for item in query:
        key, sep, value = item.partition("=")
        if not sep:
            console.print(f"[red]Expected Tag=value, got {item!r}[/red]")
            raise typer.Exit(2)
        constraints[key] = value
    body: dict[str, Any] = {"Level": level, "Query": constraints, "Expand": expand}
    if limit:
        body["Limit"] = limit
    with _client(url, auth) as client:
        response = client.post("/tools/find", json=body)
    sys.stdout.write(json.dumps(response.json(), indent=2) + "\n")
    if response.status_code != 200:
        raise typer.Exit(1)


def main() -> None:
    app()
