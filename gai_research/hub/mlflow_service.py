"""The hub-managed MLflow service: ``python -m gai_research.hub.mlflow_service``.

JupyterHub starts this process (``c.JupyterHub.services``) with its ``JUPYTERHUB_*``
variables. It starts the MLflow server on the unix socket in the hub's private folder
(prefix ``/services/mlflow``), then serves the authenticating proxy on the service's
loopback URL straight away: the hub sees the service up at once, and the proxy answers
503 "starting" until MLflow is ready (~10-30 s). SIGTERM or SIGINT (the hub stopping)
stop MLflow's whole process group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from urllib.parse import urlsplit

__all__ = ["main"]

log = logging.getLogger("gai_research.hub.mlflow_service")
_WATCH_S = 10.0


def main() -> int:
    from gai_research.config import load_settings
    from gai_research.hub.mlflow_proxy import make_app
    from gai_research.hub.mlflow_server import MlflowServer, server_command
    from gai_research.hub.state import hub_paths

    logging.basicConfig(level=logging.INFO, format="[mlflow-service %(levelname)s] %(message)s")
    settings = load_settings()
    paths = hub_paths(settings)
    service_url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/mlflow/")
    if not service_url.port:
        print("JUPYTERHUB_SERVICE_URL is not set: run this as a hub service", file=sys.stderr)
        return 2
    public = urlsplit(settings.hub.url)
    sock = paths.mlflow_socket
    sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    server = MlflowServer(
        server_command(
            settings,
            unix_socket=sock,
            static_prefix=prefix,
            allowed_hosts=("localhost", "127.0.0.1", public.netloc),
            cors_origins=(f"{public.scheme}://{public.netloc}",),
        ),
        log_file=paths.root / "mlflow-server.log",
    )
    server.start()
    app = make_app(prefix, str(sock), cookie_secret=secrets.token_bytes(32))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        app.listen(service_url.port, address=service_url.hostname or "127.0.0.1")
        log.info("proxy on %s for MLflow at %s (%s)", service_url.geturl(), sock, prefix)
        while not stop.is_set():  # a watchdog: MLflow comes back if it dies
            try:
                await asyncio.wait_for(stop.wait(), timeout=_WATCH_S)
            except TimeoutError:
                if server.proc is not None and server.proc.poll() is not None:
                    log.error("MLflow exited with %s; starting it again", server.proc.returncode)
                    server.stop()
                    server.start()

    try:
        asyncio.run(serve())
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # stopping already: the hub may repeat
            signal.signal(sig, signal.SIG_IGN)
        server.stop()
        sock.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
