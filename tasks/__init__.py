"""Celery: the app, queues and routes, the thin tasks, the beat, and worker start-up.

Tasks take ids, call one ``pipeline.steps`` function, and send what it says is due next.
"""
