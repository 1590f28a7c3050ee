from ragfleet.common.server import serve
from ragfleet.testkit.rerank_server import RerankServerSettings

if __name__ == "__main__":
    serve(RerankServerSettings(), "ragfleet.testkit.rerank_server:create_app")
