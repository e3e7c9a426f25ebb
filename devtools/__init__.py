"""Tools for tests and benchmarks, kept out of the product (setuptools does not install this package)."""
