"""Foundations every other package uses: configs and run ids, atomic files and the directory lock,
worker processes, time limits, the verdict type, integer notation and the command-line check."""
