"""ragfleet-containers: the images (``make base-images``, ``make images``, ``make push``) and
``make test-containers``, which runs the chart's rendered workloads as podman containers."""
