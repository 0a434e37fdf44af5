pytest_plugins = [
    "tests.conftest_db",
    "tests.conftest_dns",
    "tests.conftest_pdns",
    "tests.conftest_slack",
]
