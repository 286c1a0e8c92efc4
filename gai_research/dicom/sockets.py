"""TCP tuning for pynetdicom associations (a shared low-level helper).

pynetdicom leaves Nagle's algorithm on and Linux delays ACKs by up to 40 ms. A
DIMSE exchange writes a message in several small pieces, so each C-STORE can stall
on the peer's delayed ACK: measured here, pynetdicom -> Orthanc seeding ran at
~11 objects/s and storescu -> a pynetdicom SCP at ~18/s for 50 kB images, against
~65/s and ~100/s once tuned. Bind :func:`tune_socket` to ``evt.EVT_CONN_OPEN`` (in
``evt_handlers`` of ``AE.associate`` or ``AE.make_server``) on either side.
"""

from __future__ import annotations

import contextlib
import socket

__all__ = ["tune_socket"]


class _QuickAckSocket:
    """A socket whose every read re-arms TCP_QUICKACK, so the peer is ACKed at once.

    Senders with Nagle's algorithm on (DCMTK, hence Orthanc and storescu; pynetdicom)
    hold the piece after a small one until our ACK comes; QUICKACK is not sticky in
    Linux, hence the re-arm after each read.
    """

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int, *flags) -> bytes:
        data = self._sock.recv(size, *flags)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def tune_socket(event) -> None:
    """``EVT_CONN_OPEN`` handler: TCP_NODELAY on our writes, immediate ACKs of our reads.

    Plain TCP sockets only (a TLS socket is left as it is); silently does nothing
    where the platform lacks the options.
    """
    transport = getattr(event.assoc.dul, "socket", None)
    sock = getattr(transport, "socket", None)
    if type(sock) is not socket.socket:  # None, TLS, or already wrapped
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_QUICKACK"):
        transport.socket = _QuickAckSocket(sock)
