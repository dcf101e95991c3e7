"""Browsing: the read side every door shares (the studio's API and pages, ``ryla`` commands).

| module | holds |
|---|---|
| ``posts`` | the post list (filters, cursor paging) and one post in full |
| ``calendar`` | posts by local day for a week or a month, per influencer or across all |
| ``feed`` | the profile's 3-column grid as Instagram will show it |
| ``review`` | the approval queue: what needs a person, and targets that need one |
| ``overview`` | posts by state, what comes next, the generator in use |

Reads only: nothing here writes, and every function takes ``now`` from its caller.
"""
