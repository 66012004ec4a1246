"""Benchmarks and decision-quality studies, run with `make bench`; results in docs/."""
