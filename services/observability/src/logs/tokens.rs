//! Pagination tokens of the log operations. Clients treat them as opaque; their shapes follow AWS's
//! where clients look at them: GetLogEvents' `f/<56 digits>` and `b/<56 digits>` (the CLI and SDK
//! paginators stop when the forward token they get back is the one they sent).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lamina_common::ApiError;

/// A place in the (timestamp, id) order of events: tokens name the last event a page showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub timestamp: i64,
    pub id: i64,
}

impl Position {
    /// Before every event at or after `timestamp`.
    pub(crate) fn before(timestamp: i64) -> Self {
        Self { timestamp, id: i64::MIN }
    }

    /// After every event at or before `timestamp`.
    pub(crate) fn after(timestamp: i64) -> Self {
        Self { timestamp, id: i64::MAX }
    }

    /// The position as one number whose decimal digits keep the order: the timestamp's and the
    /// id's bits, each with the sign bit flipped so that negative values sort first.
    fn to_u128(self) -> u128 {
        let flip = |v: i64| (v as u64) ^ (1 << 63);
        (u128::from(flip(self.timestamp)) << 64) | u128::from(flip(self.id))
    }

    fn from_u128(v: u128) -> Self {
        let unflip = |v: u64| (v ^ (1 << 63)) as i64;
        Self { timestamp: unflip((v >> 64) as u64), id: unflip(v as u64) }
    }
}

/// A GetLogEvents token: read on after (`f/`) or before (`b/`) a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamToken {
    Forward(Position),
    Backward(Position),
}

impl StreamToken {
    pub(crate) fn parse(token: &str) -> Result<Self, ApiError> {
        let (direction, digits) = token.split_once('/').ok_or_else(invalid_token)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid_token());
        }
        let significant = digits.trim_start_matches('0');
        let value =
            if significant.is_empty() { 0 } else { significant.parse::<u128>().map_err(|_| invalid_token())? };
        let position = Position::from_u128(value);
        match direction {
            "f" => Ok(Self::Forward(position)),
            "b" => Ok(Self::Backward(position)),
            _ => Err(invalid_token()),
        }
    }

    pub(crate) fn format(self) -> String {
        match self {
            Self::Forward(p) => format!("f/{:056}", p.to_u128()),
            Self::Backward(p) => format!("b/{:056}", p.to_u128()),
        }
    }
}

/// FilterLogEvents' nextToken: the position of the last event scanned.
pub(crate) fn encode_position(p: Position) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", p.timestamp, p.id))
}

pub(crate) fn decode_position(token: &str) -> Result<Position, ApiError> {
    let text = decode_text(token)?;
    let (timestamp, id) = text.split_once(':').ok_or_else(invalid_token)?;
    Ok(Position {
        timestamp: timestamp.parse().map_err(|_| invalid_token())?,
        id: id.parse().map_err(|_| invalid_token())?,
    })
}

/// A name cursor (DescribeLogGroups, DescribeLogStreams).
pub(crate) fn encode_text(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

pub(crate) fn decode_text(token: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD.decode(token).ok().and_then(|raw| String::from_utf8(raw).ok()).ok_or_else(invalid_token)
}

pub(crate) fn invalid_token() -> ApiError {
    ApiError::InvalidParameterValue("The specified nextToken is invalid.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_tokens_round_trip_and_keep_order_in_their_digits() {
        let positions = [
            Position::before(i64::MIN),
            Position { timestamp: -5, id: 3 },
            Position { timestamp: 0, id: 0 },
            Position { timestamp: 1_700_000_000_000, id: 1 },
            Position { timestamp: 1_700_000_000_000, id: 2 },
            Position::after(1_700_000_000_000),
            Position::after(i64::MAX),
        ];
        let mut previous: Option<String> = None;
        for p in positions {
            for token in [StreamToken::Forward(p), StreamToken::Backward(p)] {
                let text = token.format();
                assert_eq!(text.len(), 58, "{text}");
                assert_eq!(StreamToken::parse(&text).expect("parse"), token);
            }
            let digits = StreamToken::Forward(p).format();
            if let Some(prev) = previous {
                assert!(prev < digits, "{prev} < {digits}");
            }
            previous = Some(digits);
        }
    }

    #[test]
    fn stream_tokens_accept_any_digits_and_reject_the_rest() {
        assert!(matches!(StreamToken::parse("f/0"), Ok(StreamToken::Forward(_))));
        assert!(matches!(StreamToken::parse("b/00012"), Ok(StreamToken::Backward(_))));
        for bad in ["", "f/", "x/12", "f12", "f/12a", "f/+1", "f/-1", &format!("f/{}", "9".repeat(60))] {
            assert!(StreamToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filter_tokens_round_trip() {
        let p = Position { timestamp: 1_700_000_000_123, id: 42 };
        assert_eq!(decode_position(&encode_position(p)).expect("decode"), p);
        assert!(decode_position("not base64!").is_err());
        assert!(decode_position(&encode_text("12")).is_err());
        assert_eq!(decode_text(&encode_text("/aws/lambda/f")).expect("decode"), "/aws/lambda/f");
    }
}
