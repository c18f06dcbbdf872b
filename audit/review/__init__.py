"""The review workflow, shared by the pages and the API: `claims` (who holds which flag: leases taken with
SKIP LOCKED, given back, run out; stale flags) and `decisions` (decide, second review, bulk accept / reject,
undo). The errors both raise live here."""


class ReviewError(Exception):
    """A review action that cannot be done as asked; the message is for the reviewer."""


class FlagStale(ReviewError):
    """The flag's product moved since it was scored: accepting its suggestion is refused."""
