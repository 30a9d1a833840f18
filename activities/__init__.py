"""Durable activities: the steps that do I/O. Each one is idempotent: it may run twice."""
