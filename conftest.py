pytest_plugins = ["ragfleet.testkit.pytest_plugin", "pytester"]
