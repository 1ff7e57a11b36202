//! The kinesis poller end to end.
