"""The one place that wires concrete classes together and runs the server."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import uvicorn

from obelisk.config import Settings
from obelisk.errors import ConfigurationError, ErrorCode
from obelisk.index import open_index
from obelisk.log_levels import use_log_format
from obelisk.services.context import Services, build_services
from obelisk.storage.filesystem import FilesystemStorage

log = logging.getLogger("obelisk.server")


def open_services(settings: Settings) -> Services:
    """Storage area + index + services, as the settings ask."""
    storage = FilesystemStorage(
        settings.storage_directory,
        fsync=bool(settings["SyncStorageArea"]),
        sync_directories=bool(settings.obelisk["SyncDirectories"]),
    )
    index = open_index(
        settings.index_location, sqlite_synchronous=str(settings.obelisk["IndexSynchronous"])
    )
    return build_services(settings, index, storage)


def bind_port(
    host: str, port: int, *, auto_increment: bool, attempts: int, what: str
) -> socket.socket:
    """Binds a listening TCP socket; with ``auto_increment``, tries the next ports when busy."""
    last_error: OSError | None = None
    for candidate in range(port, port + (attempts if auto_increment and port else 1)):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it, a response written in two parts (headers,
        # body) waits ~40 ms for the client's delayed ACK on every keep-alive request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            last_error = exc
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                break
            continue
        sock.listen(1024)
        if candidate != port and port:
            log.warning("%s port %d is busy, using %d instead", what, port, candidate)
        return sock
    code = ErrorCode.HttpPortInUse if what == "HTTP" else ErrorCode.DicomPortInUse
    raise ConfigurationError(
        f"The {what} port {port} on {host} is already in use or not allowed"
        + ("" if auto_increment else " (set Obelisk.PortAutoIncrement to try the next ports)"),
        code=code,
        details=str(last_error),
    )


def http_host(settings: Settings) -> str:
    configured = str(settings.obelisk["BindAddress"])
    if configured:
        return configured
    return "0.0.0.0" if settings["RemoteAccessAllowed"] else "127.0.0.1"


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for ``SslEnabled``: ``SslCertificate`` is one PEM file holding the
    certificate (chain) and its private key, as in Orthanc. Checked here so that a bad file is a
    configuration error at start, not a failed handshake later."""
    if not settings["SslEnabled"]:
        return {}
    path = settings.resolve_path(str(settings["SslCertificate"]))
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"Cannot use the SSL certificate {path} (it must hold the certificate and its key)",
            code=ErrorCode.SslInitialization,
            details=str(exc),
        ) from exc
    return {"ssl_certfile": str(path)}


def serve(settings: Settings) -> bool:
    """Runs the server until SIGINT/SIGTERM or ``POST /tools/shutdown``; ``True`` when
    ``POST /tools/reset`` asked for a restart (the caller starts it again)."""
    use_log_format(str(settings.obelisk["LogFormat"]))
    tls = tls_options(settings)
    host = http_host(settings)
    http_socket = bind_port(
        host,
        int(settings["HttpPort"]),
        auto_increment=bool(settings.obelisk["PortAutoIncrement"]),
        attempts=int(settings.obelisk["PortAutoIncrementAttempts"]),
        what="HTTP",
    )
    settings.values["HttpPort"] = http_socket.getsockname()[1]
    services = open_services(settings)
    from obelisk.http.app import create_app

    app = create_app(services)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        lifespan="off",
        # Server-sent event streams never end by themselves: do not wait for them on SIGTERM.
        timeout_graceful_shutdown=3,
        loop="auto",
        http="auto",
        **tls,
    )
    server = uvicorn.Server(config)
    restart_requested = False

    def stop_server(*, restart: bool) -> None:
        nonlocal restart_requested
        restart_requested = restart
        log.warning("%s requested over REST", "A restart" if restart else "A shutdown")
        server.should_exit = True  # uvicorn notices within 0.1 s, after the answer is sent

    app.state.stop_server = stop_server
    from obelisk.dicom.scp import start_dicom_network

    dicom_server = start_dicom_network(settings, services, host)
    services.start()
    log.info(
        "Obelisk is ready: %s on %s:%d, storage in %s, index %s",
        "HTTPS" if tls else "HTTP",
        host,
        settings["HttpPort"],
        settings.storage_directory,
        settings.index_location,
    )
    dicom_ready = f" dicom={dicom_server.port}" if dicom_server else ""
    print(f"OBELISK READY http={settings['HttpPort']}{dicom_ready}", flush=True)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(server.serve(sockets=[http_socket]))
    finally:
        if dicom_server is not None:
            dicom_server.stop()
        services.close()
        http_socket.close()
    return restart_requested


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): its loop and its wake-ups from the
    ingest threads cost a fraction of asyncio's. ``None`` means asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
