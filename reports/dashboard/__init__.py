"""The dashboard the exporter serves at ``/dashboard``: a login form, a page that
charts the stats API's slices and the pipeline's lag, and its assets."""
