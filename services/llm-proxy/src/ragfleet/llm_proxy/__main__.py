from ragfleet.common.server import serve
from ragfleet.llm_proxy.config import LlmProxySettings

if __name__ == "__main__":
    serve(LlmProxySettings(), "ragfleet.llm_proxy.main:create_app")
