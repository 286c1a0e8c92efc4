"""Start and stop a pynetdicom Storage SCP listening in a background thread.

One pattern for every DICOM server of the platform (the ingest StorageSCP, the
gateway's receiver, the dicom adapter's results receiver, the DICOM-node simulator):
``ae.make_server`` with a threaded server, the sockets tuned on connect
(:func:`~gai_research.dicom.sockets.tune_socket`), the presentation contexts shared
rather than deep-copied per association
(:func:`~gai_research.dicom.contexts.share_contexts`), and ``serve_forever`` in a named
daemon thread that polls for shutdown every ``poll_interval`` seconds (pynetdicom's own
``start_server`` polls every 0.5 s; a C-MOVE fetch starts and stops a receiver per
study, so poll faster).

A port that cannot be bound raises :class:`OSError` from :func:`start_scp`; callers
wrap it in their own error with their own hint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["POLL_S", "start_scp", "stop_scp"]

POLL_S = 0.05  # how often the listening thread checks for stop_scp()


def start_scp(
    ae: Any,
    address: tuple[str, int],
    handlers: Sequence[tuple],
    *,
    thread_name: str,
    share: bool = True,
    poll_interval: float = POLL_S,
) -> tuple[Any, threading.Thread]:
    """Listen on ``address`` with ``ae`` in a daemon thread; ``(server, thread)``.

    ``handlers`` are pynetdicom event handlers; :func:`tune_socket` is bound to
    ``EVT_CONN_OPEN`` unless it already is. ``share`` makes associations share the
    presentation contexts. Raises :class:`OSError` when the address cannot be bound.
    """
    from pynetdicom import evt
    from pynetdicom.transport import ThreadedAssociationServer

    from gai_research.dicom.contexts import share_contexts
    from gai_research.dicom.sockets import tune_socket

    bound = list(handlers)
    if (evt.EVT_CONN_OPEN, tune_socket) not in bound:
        bound.insert(0, (evt.EVT_CONN_OPEN, tune_socket))
    server = ae.make_server(address, evt_handlers=bound, server_class=ThreadedAssociationServer)
    if share:
        share_contexts(server)  # not deep-copied per association (0.1-0.7 s each)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": poll_interval},
        name=thread_name,
        daemon=True,
    )
    thread.start()
    return server, thread


def stop_scp(
    ae: Any,
    server: Any,
    thread: threading.Thread | None,
    *,
    before_abort: Callable[[], None] | None = None,
) -> None:
    """Stop a server of :func:`start_scp`: stop accepting, close, join its thread,
    call ``before_abort`` (to let associations finish), abort what is still open."""
    import socketserver

    # BaseServer.shutdown: pynetdicom's override also edits the AE's private server list
    socketserver.BaseServer.shutdown(server)
    server.server_close()
    if thread is not None:
        thread.join()
    if before_abort is not None:
        before_abort()
    for assoc in list(ae.active_associations):
        assoc.abort()  # also connections that never asked for an association
