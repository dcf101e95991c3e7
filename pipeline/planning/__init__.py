"""Planning: what should be posted, when. Influencers and characters, calendars and their slot
rules (one create/edit/validate path for the CLI, the import and the API), expansion of rules
into post rows, rotation, holds (pause/resume/delete), one-off posts, imports and the feed plan.

| module | holds |
|---|---|
| ``influencers`` | influencers and characters |
| ``rules`` | checking a slot rule and a calendar's settings as people give them |
| ``calendars`` | adding, editing, listing calendars; re-planning their future posts |
| ``times`` | zones, days, local times, RRULEs, relative times |
| ``expand`` | slot rules → post rows, once per slot |
| ``slots`` | inserting slot rows without duplicates on PostgreSQL and SQLite |
| ``rotation`` | the deterministic rotation of scenes, environments, outfits, captions |
| ``holds`` | pausing, resuming and deleting influencers and calendars |
| ``posts`` | one-off posts and carousels |
| ``imports`` | CSV / YAML imports: every row checked, all or nothing |
| ``feed_plan`` | the coming feed drawn as a 3-column grid |
"""
