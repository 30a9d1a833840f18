"""Durable orchestrations. Deterministic by rule: no I/O, no clocks, no randomness in here."""
