"""Internal API for ingestion: upsert and delete chunks, read what a document has in the index."""
