//! The sqs poller end to end.
