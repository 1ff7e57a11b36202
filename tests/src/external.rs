//! Clients of the external servers event-source tests use (started by `scripts/test.sh`). (Helper H6.)
