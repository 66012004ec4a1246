"""The engine: decision, rollout machine, store, runtime, CLI and reports."""
