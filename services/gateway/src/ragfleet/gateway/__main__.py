from ragfleet.common.server import serve
from ragfleet.gateway.config import GatewaySettings

# A message somewhat over max_ws_message_bytes is read and refused by the app, with a close reason
# naming the limit; a far larger one is cut off by the server (1009, no reason) before it is
# buffered whole, so no client can make a replica hold megabytes per connection.
WS_PROTOCOL_LIMIT_FACTOR = 4

if __name__ == "__main__":
    settings = GatewaySettings()
    serve(
        settings,
        "ragfleet.gateway.main:create_app",
        ws_max_size_bytes=settings.max_ws_message_bytes * WS_PROTOCOL_LIMIT_FACTOR,
    )
