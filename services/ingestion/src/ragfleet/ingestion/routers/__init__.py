"""The ingestion API's routes: FastAPI only — parse the request, call a service module, shape the answer."""
