"""Faust agents, one module per agent family."""
