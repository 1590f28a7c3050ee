from ragfleet.common.server import serve
from ragfleet.retrieval.config import RetrievalSettings

if __name__ == "__main__":
    serve(RetrievalSettings(), "ragfleet.retrieval.main:create_app")
