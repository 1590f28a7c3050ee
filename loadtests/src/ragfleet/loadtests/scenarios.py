"""Scenario names → Locust user classes, and the weights of the mixed scenario.

Kept free of Locust imports: importing Locust monkey-patches the process (gevent), which the runner
and the tests must not suffer.
"""

from __future__ import annotations

SCENARIOS: dict[str, list[str]] = {
    "search": ["SearchUser"],
    "chat": ["ChatUser", "ChatWebSocketUser"],
    "ingest": ["SearchUser", "IngestUser"],
    "mixed": ["SearchUser", "ChatUser", "ChatWebSocketUser", "IngestUser"],
    "search-tail": ["SearchUser"],
}

# Options a scenario implies (the command line can still override each; the last one wins).
SCENARIO_OPTIONS: dict[str, list[str]] = {
    # The tail under a wide pool: most questions are rare, so misses (an embedding each) are
    # frequent and arrive while hits are served; hits must not wait behind them (issue #18).
    "search-tail": [
        *("--query-pool-size", "20000", "--zipf-exponent", "1.1", "--search-modes", "hybrid"),
        *("--gate-p99-ms", "*=500", "--gate-qps", "off"),
    ],
}

# Class weights of the mixed scenario per --mix: (search, chat REST+SSE, chat WebSocket, ingest).
MIXES: dict[str, tuple[int, int, int, int]] = {
    "normal": (70, 15, 5, 10),  # mostly reads, some conversations, a trickle of uploads
    "intense": (90, 5, 1, 4),  # a search storm: what the QPS gate is about
    "rag": (30, 45, 20, 5),  # chat-heavy: retrieval and generation on most requests
}
