"""The policy language: pack schema, loader, and the incremental rule evaluator.

This package is the pure base layer of tidegate: it imports neither `controller` nor
`adapters`, reads no clock and does no I/O beyond loading the files it is asked to load.
"""
