"""The package version: one place, imported by the cache key and the report without the package."""

__version__ = "0.1.0"
