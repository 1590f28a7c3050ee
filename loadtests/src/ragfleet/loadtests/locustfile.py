"""The Locust entry point: ``locust -f <this file> [UserClass ...] [--tags ...]``.

The users live in ``users.py``, the run's bookkeeping (gates, report, exit code) in ``hooks.py``;
``python -m ragfleet.loadtests.run`` builds the whole command line for a scenario.
"""

from ragfleet.loadtests import hooks
from ragfleet.loadtests.users import ChatUser, ChatWebSocketUser, EchoUser, IngestUser, SearchUser

hooks.register()

__all__ = ["ChatUser", "ChatWebSocketUser", "EchoUser", "IngestUser", "SearchUser"]
