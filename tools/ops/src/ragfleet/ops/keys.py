"""``ragfleet-ops create-key``: an admin API key for a cluster, made where it lives.

The key is drawn here and written straight into a Kubernetes Secret; it is never printed, logged
or passed on a command line. The gateway seeds it at start from that Secret
(RAGFLEET_GATEWAY_ADMIN_KEY, chart value credentials.adminKey.existingSecret), so run this before
the gateway starts (``make deploy`` does) or restart the gateway afterwards. Whoever may read the
Secret may read the key: ``kubectl get secret ... -o jsonpath`` is how ``make loadtest-kind``
hands it to Locust, through the environment.
"""

from __future__ import annotations

import secrets

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ragfleet.ops.cluster import PART_OF_LABEL, REQUEST_TIMEOUT, Connection, OpsError, api_message

# The gateway's key prefix (ragfleet.gateway.keys.KEY_PREFIX): an admin key reads like any other.
KEY_PREFIX = "rfk_"


def new_admin_key() -> str:
    return f"{KEY_PREFIX}admin_{secrets.token_urlsafe(32)}"


def ensure_key_secret(connection: Connection, namespace: str, name: str, key: str) -> bool:
    """Create Secret ``name`` holding a fresh admin key under ``key``; keep one that exists.

    Returns whether it was created. A Secret that exists is never overwritten: the key in it may
    be the one every client already uses.
    """
    core = client.CoreV1Api(connection.api_client)
    try:
        core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        return False
    except ApiException as error:
        if error.status != 404:
            raise OpsError(
                f"cannot read Secret {name} in {namespace}: {error.status} {api_message(error)}"
            ) from None
    except urllib3.exceptions.HTTPError as error:
        raise OpsError(f"cannot reach the API server: {error}") from None
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels={PART_OF_LABEL: "ragfleet"}),
        type="Opaque",
        string_data={key: new_admin_key()},
    )
    try:
        core.create_namespaced_secret(namespace, body, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 409:  # made by someone else meanwhile: theirs stands
            return False
        raise OpsError(
            f"cannot create Secret {name} in {namespace}: {error.status} {api_message(error)}"
        ) from None
    return True
