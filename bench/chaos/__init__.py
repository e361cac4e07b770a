"""The chaos run: the local platform, two instances of every service under the supervisor
`make run` uses, a paced load of applications and a seeded fault schedule, then checks that
nothing was lost, duplicated or leaked (docs/chaos.md).

    schedule.py  the seeded fault schedule, printed before anything starts
    platform.py  PostgreSQL, Kafka, Hydra and 2 x 4 supervised services on private ports
    faults.py    what each fault does to the platform, and the windows it opened
    load.py      the paced load: POSTs through both API instances, every response recorded
    checks.py    what must hold after the drain, read from PostgreSQL, Kafka and the logs
    run.py       the run from start to report; `python -m bench.chaos` is `make chaos`
"""
