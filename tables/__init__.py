"""Faust tables and the helpers that write them."""
