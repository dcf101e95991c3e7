"""The pure steps of the pipeline: no Celery here, callable from a test, the CLI or a task."""
