"""The dashboard's data layer: what the pages read and start, behind Streamlit's caches.

One module per source, each reading from the tool that owns the data:

- ``common``: where to read (project, state, URLs), shared connections, the page list,
  the logged-in user and the small helpers every page uses;
- ``registry``: model versions, stages, serving state, gates, history, lineage;
- ``runs``: training runs and their candidates (experiment records);
- ``drift``: the monitored windows (drift share, per-feature scores);
- ``predictions``: the prediction and feedback log (live accuracy, served confidence,
  champion versus challenger on the same labelled requests);
- ``service_metrics``: the service's Prometheus ``/metrics`` (rates, latency);
- ``prefect_runs``: Prefect's API (flow runs, a run's state);
- ``actions``: starting the Prefect deployment behind a dashboard action;
- ``datasets``: data versions (DVC), the batch's schema, validation and rejections.

Loaders take plain strings (URLs, folders) so the caches are keyed by where they read;
pages hold the layout. Nothing here imports at package import time beyond Streamlit.
"""
