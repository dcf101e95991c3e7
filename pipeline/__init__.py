"""The pure steps of the pipeline: no Celery here, callable from a test, the CLI or a task.

| package / module | holds |
|---|---|
| ``planning/`` | influencers, calendars and rules, expansion into posts, holds, imports |
| ``steps/`` | the beat tick, claims and state moves, leases, one file per step |
| ``generators/`` | the generator contract, Z-Image, the preview placeholder, prompts |
| ``media/`` | renditions, framing, JPEG writing, storage, signed media URLs |
| ``publishers/`` | the publisher contract, Instagram, webhook, outbox, targets and tokens |
| ``captions`` | captions and alt text within Instagram's limits |
| ``validation`` | checks shared by every door (CLI, import, API) |
| ``errors`` | every error the pipeline raises, in one tree |
| ``health`` | whether the database and broker answer, since when; outages told from bad queries |
| ``settings``, ``db``, ``crypto``, ``locks`` | configuration, sessions, secrets, the beat lock |
"""
