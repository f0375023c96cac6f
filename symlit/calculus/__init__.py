"""Calculus tasks (Lample & Charton): prefix notation, random expressions, generators, verifiers."""

from symlit.calculus.prefix import PrefixError, UnsupportedExpression, prefix_to_sympy, sympy_to_prefix

__all__ = ["PrefixError", "UnsupportedExpression", "prefix_to_sympy", "sympy_to_prefix"]
