"""`progressor serve`: progressor's decisions over HTTP, for the services clinics run.

One router per area (`compute`: the stateless step and replay; `health`: liveness and
readiness; `patients` and `review`: the store's, which `stored` opens per request). `tokens`
keeps the bearer tokens (hashed), `auth` checks them against the role table, `limits` bounds
every request and writes the access log, `problems` turns every error into RFC 9457 problem
details.
"""

from progressor.serve.settings import ServeSettings

__all__ = ["ServeSettings"]
