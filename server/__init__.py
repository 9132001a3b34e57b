"""CoCanvas: a real-time collaborative canvas server.

Importing the package first decides whether the update reader and the validator run compiled
(server/native.py): that has to happen before anything imports them.
"""

from . import native

native.install()
