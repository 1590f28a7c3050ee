"""Runs the whole ragfleet suite on one machine (make run) and in tests."""
