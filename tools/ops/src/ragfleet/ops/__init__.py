"""ragfleet-ops: SRE tooling on the official Kubernetes client."""
