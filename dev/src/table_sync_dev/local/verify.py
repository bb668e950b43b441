"""Reading copies back for the demo and tests: see table_sync.compare."""

from table_sync.compare import S3Export, differences, read_export, read_table

__all__ = ["S3Export", "differences", "read_export", "read_table"]
