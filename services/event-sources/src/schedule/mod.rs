//! Schedule expressions: `rate(...)` and six-field `cron(...)`, and their next tick. (Helper H1.)
