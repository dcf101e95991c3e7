"""Planning: what should be posted, when. Influencers and characters, calendars and their slot
rules (one create/edit/validate path for the CLI, the import and the API), expansion of rules
into post rows, rotation, holds (pause/resume/delete), one-off posts, imports and the feed plan.

| module | holds |
|---|---|
| ``influencers`` | influencers and characters |
| ``rules`` | checking a slot rule and a calendar's settings as people give them |
| ``caption_limits`` | captions checked as they will be posted (a rule's at their longest) |
| ``frequency`` | at most hourly per rule, a daily cap per influencer, no rule adding nothing |
| ``calendars`` | adding, editing, listing calendars; re-planning their future posts |
| ``times`` | zones, days, local times, RRULEs, relative times |
| ``walls`` | a rule's local wall times and ordinals, counted on from an anchor near today |
| ``expand`` | slot rules → post rows, once per slot; an unplannable calendar is marked broken |
| ``slots`` | inserting slot rows without duplicates on PostgreSQL and SQLite |
| ``rotation`` | the deterministic rotation of scenes, environments, outfits, captions |
| ``holds`` | pausing, resuming and deleting influencers and calendars |
| ``posts`` | one-off posts and carousels |
| ``imports`` | CSV / YAML imports: every row checked, all or nothing |
| ``feed_plan`` | the coming feed drawn as a 3-column grid |
"""
