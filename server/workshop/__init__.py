"""Running a workshop: vote rounds, timers, the stage (freeze, gather, spotlight), comments.

What the server writes lives in roots only it may change (``SERVER_ROOTS`` in
``server/canvas/schema.py``); comments are written by clients and stamped by the policy. Ballots
of a round whose results are hidden never enter the document: they live in the store until the
reveal (``rounds.py``).
"""
