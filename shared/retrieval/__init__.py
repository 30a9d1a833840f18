"""Retrieval: ACL-trimmed hybrid search over the chunk index, filters and follow-ups."""
