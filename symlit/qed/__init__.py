"""Tree-level QED for SYMBA-style data: particles, SYMBA text format, tokens, Dirac traces, generator.

* :mod:`symlit.qed.particles`: SYMBA's particle table (``e mu t u d s c b tt A``).
* :mod:`symlit.qed.symba_format`: parse SYMBA/MARTY amplitudes and squared amplitudes.
* :mod:`symlit.qed.tokens`: prefix / hybrid prefix / mass-token shortening, exact round trip.
* :mod:`symlit.qed.dirac`: our own gamma-matrix trace and Lorentz contraction engine.
* :mod:`symlit.qed.generator`: processes, diagrams, amplitude text and squared amplitudes.
* :mod:`symlit.qed.kinematics`: random phase-space points for numeric checks.
* :mod:`symlit.qed.keys`: canonical keys of diagrams (labelled, up to relabelling, up to charge
  conjugation) for leak-free splits; generic tree-level Feynman graphs, reusable by other theories.

``python -m symlit.qed --shapes 2to2 --out qed_2to2.csv`` writes a SYMBA-format CSV (``amp,sqamp``);
``--work-dir DIR`` generates in resumable shards.
"""
