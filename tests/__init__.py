"""The test suite, a package so that tests and benchmarks import their helpers one way:
``from tests.reference import ...`` (oracles), ``from tests._deploy import ...`` and
``from tests._dataset_files import ...`` (small files and models), from the repository root."""
