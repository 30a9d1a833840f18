"""Routing of chat requests: which region (and, later, which model tier) serves them."""
