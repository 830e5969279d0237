"""How to sample: the sampler settings saved with every fit (no PyMC here)."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLERS = ("nutpie", "pymc")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample (saved with the fit).

    Attributes
    ----------
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, and the number of chains.
    target_accept : float
        NUTS target acceptance rate.
    sampler : {"nutpie", "pymc"}
    seed : int
        Seed of the sampler (and of the draws made after sampling).
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.95
    sampler: str = "nutpie"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, not {self.sampler!r}")
        if self.draws < 1 or self.tune < 0 or self.chains < 1:
            raise ValueError("draws and chains must be positive, tune non-negative")
