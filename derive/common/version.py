"""The version of derive, as the report and the JSON state it."""

__version__ = "0.1.0"
