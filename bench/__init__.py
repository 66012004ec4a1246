"""Benchmarks and decision-quality studies, run with `make bench`; results in docs/.

Benchmarks are measurements, not tests: nothing here asserts on time. Generated data lands
in bench/out/, which git ignores.
"""
