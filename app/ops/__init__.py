"""Running imptrack: the local stack, its broker, probes and topics."""
