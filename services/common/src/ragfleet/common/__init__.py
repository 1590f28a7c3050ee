"""Code every ragfleet service shares: settings, logging, errors, telemetry, metrics, clients.

This package never imports a service.
"""
