"""Deterministic randomness and UIDs derived from the seed and a key path.

Each patient, study and series draws from its own generator, named by its key, so
the order in which things are generated never changes what they contain.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
from pydicom.uid import UID

from gai_research.synth.types import GENERATOR, GENERATOR_VERSION

__all__ = ["derive_rng", "derive_uid"]


_NAMESPACE = uuid.UUID("6f1d2a52-9c1e-4b7e-8a55-7a6b1c0d9e21")  # gai-research synth


def _key_int(part: object) -> int:
    digest = hashlib.sha256(str(part).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def derive_rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``keys``."""
    return np.random.default_rng([int(seed), *(_key_int(k) for k in keys)])


def derive_uid(seed: int, *keys: object) -> str:
    """A ``2.25.<int>`` UID that depends only on the generator, ``seed`` and ``keys``.

    ``pydicom.uid.generate_uid(prefix=None, ...)`` ignores ``entropy_srcs`` and returns a
    random UUID, so the UUID is derived here instead: a name-based (version 5) UUID of
    the key path, written as an integer under the ``2.25`` root (PS3.5 B.2).
    """
    name = "/".join([GENERATOR, GENERATOR_VERSION, str(seed), *(str(k) for k in keys)])
    return UID(f"2.25.{uuid.uuid5(_NAMESPACE, name).int}")
