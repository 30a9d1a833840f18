"""Durable Functions for the local host: SQLite-backed history, SDK replay, the HTTP API."""
