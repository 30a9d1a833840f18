"""Extraction engines: each turns a SourceDocument page range into the normalised Layout."""
