"""make eval: how well retrieval ranks documents, measured through its HTTP API on a graded set."""
