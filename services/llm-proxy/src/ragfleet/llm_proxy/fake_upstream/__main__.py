from ragfleet.common.server import serve
from ragfleet.llm_proxy.fake_upstream import FakeUpstreamSettings

if __name__ == "__main__":
    serve(FakeUpstreamSettings(), "ragfleet.llm_proxy.fake_upstream:create_app")
