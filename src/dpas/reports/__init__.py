"""Reports: tables, files and figures made from result records (never running anything)."""
