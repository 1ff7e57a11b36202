//! ARNs of the external resources event sources name (parsing only: no client needed).

/// An SQS queue ARN's parts: `arn:aws:sqs:<region>:<account>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueArn {
    pub region: String,
    pub account: String,
    pub name: String,
}

impl QueueArn {
    /// Parses an SQS queue ARN; `None` when it is not one.
    pub fn parse(arn: &str) -> Option<Self> {
        let rest = arn.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        let (_partition, service, region, account, name) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (service == "sqs" && !region.is_empty() && !account.is_empty() && !name.is_empty() && !name.contains(':'))
            .then(|| Self { region: region.to_owned(), account: account.to_owned(), name: name.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns() {
        let arn = QueueArn::parse("arn:aws:sqs:us-east-1:123456789012:orders").expect("an SQS ARN");
        assert_eq!(arn.name, "orders");
        assert_eq!(arn.account, "123456789012");
        assert!(QueueArn::parse("arn:aws:kinesis:us-east-1:123456789012:stream/s").is_none());
        assert!(QueueArn::parse("arn:aws:sqs:us-east-1:123456789012").is_none());
    }
}
