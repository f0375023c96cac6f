"""The QCD particle set: the quarks of the QED table (same names, charges and masses), their
antiquarks (``~``), the gluon ``G`` (colour octet) and the photon ``A`` (for mixed QED+QCD)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from symlit.qed.particles import PARTICLES as QED_PARTICLES
from symlit.qed.particles import QUARKS, Particle
from symlit.qed.particles import Species as QEDSpecies

GLUON = "G"
PHOTON = "A"
PARTICLES: dict[str, Particle] = {
    **{q: QED_PARTICLES[q] for q in QUARKS},
    GLUON: Particle(GLUON, Fraction(0), fermion=False),
    PHOTON: QED_PARTICLES[PHOTON],
}
MASS_NAMES: tuple[str, ...] = tuple(f"m_{q}" for q in QUARKS)


@dataclass(frozen=True, order=True)
class Species(QEDSpecies):
    """A quark, an antiquark (``anti``), the gluon or the photon (the bosons are self-conjugate).

    Its charge, text (``u~``) and :meth:`parse` are QED's; its particles are the QCD set."""

    TABLE: ClassVar[dict[str, Particle]] = PARTICLES

    def __post_init__(self) -> None:
        if self.name not in PARTICLES:
            raise KeyError(f"unknown QCD particle {self.name!r}; known: {sorted(PARTICLES)}")
        if self.anti and self.name not in QUARKS:
            object.__setattr__(self, "anti", False)

    @property
    def is_quark(self) -> bool:
        return self.name in QUARKS

    @property
    def is_gluon(self) -> bool:
        return self.name == GLUON

    def conjugate(self) -> Species:
        """The antiparticle (the bosons are their own)."""
        return Species(self.name, not self.anti) if self.is_quark else self


def all_species(names: list[str] | tuple[str, ...] | None = None) -> list[Species]:
    """Every particle and antiparticle of ``names`` (default: the whole QCD set)."""
    out = []
    for n in names or list(PARTICLES):
        out.append(Species(n))
        if n in QUARKS:
            out.append(Species(n, True))
    return out
