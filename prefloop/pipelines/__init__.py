"""The pipelines: multi-stage jobs that wire the store, the labeling app, the judge and the
trainers together (``prefloop demo``, ``prefloop loop``, ``prefloop eval``).

Only the CLI imports them; they import everything below them and nothing above.
"""
