from ragfleet.common.server import serve
from ragfleet.testkit.fake_llm import FakeUpstreamSettings

if __name__ == "__main__":
    serve(FakeUpstreamSettings(), "ragfleet.testkit.fake_llm:create_app")
