"""The two Faust processes: the worker and the forwarder."""
