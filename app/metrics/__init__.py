"""Prometheus metrics of every imptrack process (issue 24), through prometheus-client.

Names follow Prometheus's conventions: the ``imptrack_`` prefix, the unit in the
name, ``_total`` for counters, histograms for latencies. Labels are bounded sets
(endpoints, statuses, reasons, outcomes, agents, topics and partitions): never an
offer, affiliate or event ID.
"""
