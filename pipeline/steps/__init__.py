"""Steps: the post's trip from ``planned`` to ``published``, one file per step.

| module | holds |
|---|---|
| ``tick`` | the beat tick: expand, reconcile expired leases, mark missed, claim due work |
| ``claims`` | claiming due posts under a lease token; ``Dispatch`` for the broker |
| ``moves`` | state moves (one conditional UPDATE + an audit row), lease-fenced ones |
| ``lease`` | working under a lease: ``held`` settles every way a step can end |
| ``failures`` | where a post goes when a step raises |
| ``outage`` | what an outage leaves, put right: unsent or lost claims, leases that only waited |
| ``generate`` | prepare → perform → record, and ``run_generate`` (batched) |
| ``render`` | prepare → perform → record, and ``run_render`` |
| ``publish`` | prepare → perform → record, and ``run_publish`` (exactly once) |
| ``attempts`` | publish attempts: committed first, checkpointed, finished once |
| ``assets`` | the files a step writes and their asset rows |
| ``previews`` | the placeholder guard: preview images never go to Instagram or a webhook |
| ``triggers`` | what a person asks for: regenerate, publish, approve, cancel |
| ``resolve`` | settling a post that may be out: ask the target, then a person's answer |
| ``runtime`` | what a process needs to run steps |
| ``run`` | running a claimed step by its name |
"""
