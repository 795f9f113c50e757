"""The admin API: the catalog's HTTP interface, served by the edge."""
