"""Deterministic, machine-independent seeds for every random stream of a run.

One run seed fans out into independent streams (permutations, subsampling, rehearsal
draws, model initialisation, ...), so changing how one stream is consumed never shifts
another, and the same (seed, stream) gives the same numbers on any machine.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *stream: object) -> int:
    """A 63-bit seed for the named sub-stream of `seed`."""
    text = "/".join([str(seed), *map(str, stream)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def torch_generator(seed: int, *stream: object):
    """A CPU `torch.Generator` seeded for the named sub-stream."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, *stream))
    return generator
