pytest_plugins = ["ragfleet.devstack.pytest_plugin"]
