"""Test doubles for ragfleet-ops and for suites that test code using it (the load-test report): a fake Kubernetes API server on loopback and scenario fixtures."""
