"""imptrack: full-cycle impression tracking for affiliate networks."""
