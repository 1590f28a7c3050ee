from ragfleet.common.server import serve
from ragfleet.ingestion.config import IngestionSettings

if __name__ == "__main__":
    serve(IngestionSettings(), "ragfleet.ingestion.main:create_app")
