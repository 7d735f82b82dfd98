"""forgetwatch: what did this fine-tune gain, and what did it forget?

Core package: settings, errors, the DuckDB schema and the one module that opens
the database, named queries, and the embedded demo world.
"""

__version__ = "0.1.0"
