"""The HTTP edge: validates, assigns IDs, produces acknowledged events, answers fast."""
