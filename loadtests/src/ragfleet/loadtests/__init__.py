"""ragfleet's load tests: Locust users per scenario, a step-ramp shape, gates and reports."""
