//! The rabbitmq poller end to end.
