"""Documents: what an upload is (type detection) and, later, its normalised layout."""
