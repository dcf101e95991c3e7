"""Observe: what the pipeline tells people about itself while it runs.

| module | holds |
|---|---|
| ``logs`` | text and JSON log formats (``RYLA_LOG_FORMAT``), zone-labelled timestamps |
| ``steps`` | one record per finished step: logged, and handed to listeners (metrics) |
| ``workers`` | heartbeat rows: which workers and beats were seen, and when |
| ``attention`` | what needs a person now, and the GPU cost so far |
| ``metrics`` | the numbers read from the database at scrape time |
| ``metrics_dir`` | the folder where Prometheus' multi-process files live |
"""
