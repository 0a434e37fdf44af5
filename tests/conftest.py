pytest_plugins = ["tests.conftest_db", "tests.conftest_slack"]
