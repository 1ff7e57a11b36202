//! Event-source mapping pollers against real servers (moto's SQS, kinesalite, RabbitMQ).

mod kinesis;
mod rabbitmq;
mod sqs;
