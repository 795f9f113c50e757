"""The DuckDB reporting store: schema, exporter, slices and the report CLI."""
