"""Apps (`stratum_app`): pipeline components that are not models, on the same reconciler as services.

    spec.py       validation knowable from the spec alone (plan time)
    schedule.py   cron in a time zone; what each scheduled time becomes (pure)
    runs.py       run records and how node reports move them (pure)
    wiring.py     connects_to: the nearest endpoint, cycles (pure)
    instances.py  which node runs which instance index (pure)
    logs.py       app logs relayed from the nodes over their sessions
    resource.py   Apps: CRUD, checks, the reconciler Kind, runs, outputs to datasets
"""
