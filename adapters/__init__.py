"""The outside world: signal sources (metrics, incidents, replayed files) and actuators."""
