"""Presentation contexts shared by every association of a Storage SCP, not copied.

pynetdicom deep-copies the acceptor's presentation contexts for each new association:
for every storage SOP class in every transfer syntax (170 x 45) that took 0.1-0.7 s
before an association could even start, measured in the gateway. Negotiation only
reads them (``presentation.negotiate_as_acceptor`` builds new result contexts), so one
list serves all associations. Applied by :func:`gai_research.dicom.server.start_scp` for the
gateway's receiver, the ingest StorageSCP and the dicom adapter's results receiver.
"""

from __future__ import annotations

__all__ = ["SharedContexts", "share_contexts"]


class SharedContexts(list):
    """A server's presentation contexts whose deep copy is the list itself."""

    def __deepcopy__(self, memo: dict) -> SharedContexts:
        return self


def share_contexts(server):
    """Make ``server`` (a pynetdicom association server) share its contexts; returns it."""
    server.contexts = SharedContexts(server.contexts)
    return server
