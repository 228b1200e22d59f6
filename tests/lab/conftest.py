from tests.lab.fixtures import lab2  # noqa: F401
