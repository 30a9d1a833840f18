"""Ingestion's contract (`contract.py`) and how an upload starts it (`start.py`)."""
