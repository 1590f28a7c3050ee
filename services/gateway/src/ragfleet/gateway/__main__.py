from ragfleet.common.server import serve
from ragfleet.gateway.config import GatewaySettings

if __name__ == "__main__":
    serve(GatewaySettings(), "ragfleet.gateway.main:create_app")
