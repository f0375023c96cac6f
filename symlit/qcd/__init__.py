"""Tree-level 2 -> 2 QCD (quarks, gluons, external photons) for SYMBA-style data.

* :mod:`symlit.qcd.colour`: SU(N) colour algebra (traces, f^{abc}, Fierz; N symbolic or a number).
* :mod:`symlit.qcd.particles`: the quarks of the QED table, the gluon ``G``, the photon ``A``.
* :mod:`symlit.qcd.generator`: processes, diagrams, Feynman rules, |M|² with colour sums and the
  physical gluon polarisation sum, SYMBA-style amplitude text, split keys, generation.
* :mod:`symlit.qcd.symba_text`: parse the amplitude text and tokenize it (colour indices renumbered).

Dirac traces, kinematics, squared-amplitude tokens and ``factor`` time limits are the QED modules'.
``python -m symlit.qcd --out qcd_2to2.csv --workers 2`` writes every 2 -> 2 process.
"""
