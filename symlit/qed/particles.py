"""The QED particle table, with SYMBA's (MARTY's) particle names.

Fermions carry an electric charge in units of the positron charge and a mass symbol ``m_<name>``;
the photon ``A`` is massless. ``t`` is the tau lepton and ``tt`` the top quark, as in SYMBA.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import sympy


@dataclass(frozen=True)
class Particle:
    """One field: ``name`` as SYMBA writes it, ``charge`` in units of ``e`` (the particle, not
    the antiparticle), ``fermion`` (spin 1/2) or photon."""

    name: str
    charge: Fraction
    fermion: bool = True

    @property
    def mass(self) -> sympy.Expr:
        """The mass symbol ``m_<name>`` (zero for the photon)."""
        return sympy.Symbol(f"m_{self.name}") if self.fermion else sympy.Integer(0)

    @property
    def mass_name(self) -> str | None:
        """``m_<name>`` for a fermion, ``None`` for the photon."""
        return f"m_{self.name}" if self.fermion else None


_THIRD = Fraction(1, 3)
PARTICLES: dict[str, Particle] = {
    p.name: p
    for p in [
        Particle("e", Fraction(-1)),
        Particle("mu", Fraction(-1)),
        Particle("t", Fraction(-1)),  # tau
        Particle("u", 2 * _THIRD),
        Particle("d", -_THIRD),
        Particle("s", -_THIRD),
        Particle("c", 2 * _THIRD),
        Particle("b", -_THIRD),
        Particle("tt", 2 * _THIRD),  # top
        Particle("A", Fraction(0), fermion=False),
    ]
}
FERMIONS: tuple[str, ...] = tuple(n for n, p in PARTICLES.items() if p.fermion)
LEPTONS: tuple[str, ...] = ("e", "mu", "t")
QUARKS: tuple[str, ...] = ("u", "d", "s", "c", "b", "tt")
MASS_SYMBOLS: dict[str, sympy.Symbol] = {f"m_{n}": sympy.Symbol(f"m_{n}") for n in FERMIONS}


def particle(name: str) -> Particle:
    """The particle called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return PARTICLES[name]
    except KeyError:
        raise KeyError(f"unknown particle {name!r}; known: {sorted(PARTICLES)}") from None


@dataclass(frozen=True, order=True)
class Species:
    """A particle or its antiparticle (``anti``); the photon is its own antiparticle."""

    name: str
    anti: bool = False

    def __post_init__(self) -> None:
        p = particle(self.name)
        if self.anti and not p.fermion:
            object.__setattr__(self, "anti", False)

    TABLE: ClassVar[dict[str, Particle]] = PARTICLES  # the particles a species may name

    @property
    def particle(self) -> Particle:
        return self.TABLE[self.name]

    @property
    def charge(self) -> Fraction:
        """Electric charge of this species (the antiparticle's is opposite)."""
        q = self.particle.charge
        return -q if self.anti else q

    def __str__(self) -> str:
        return self.name + ("~" if self.anti else "")

    @classmethod
    def parse(cls, text: str) -> Species:
        """``"e"``, ``"e~"`` (antiparticle), ``"A"``."""
        text = text.strip()
        return cls(text[:-1], True) if text.endswith("~") else cls(text, False)


def all_species(names: tuple[str, ...] | list[str] | None = None) -> list[Species]:
    """Every particle and antiparticle of ``names`` (default: the whole table)."""
    out = []
    for n in names or list(PARTICLES):
        out.append(Species(n))
        if particle(n).fermion:
            out.append(Species(n, True))
    return out
