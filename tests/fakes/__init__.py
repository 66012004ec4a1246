"""Loopback fakes of vendor APIs that cannot run here (see ../shared/reference/apis.md)."""
