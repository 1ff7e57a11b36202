//! CloudWatch Logs and CloudWatch metrics APIs, end to end, with the AWS SDKs.
