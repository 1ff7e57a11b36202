//! Schedule expressions: `rate(...)` and six-field `cron(...)` as the Lambda guide and EventBridge
//! define them (UTC, one-minute precision), and the instant of their next tick.
//!
//! Ticks are epoch milliseconds. A rate schedule ticks every period from the instant its rule was
//! created or its expression last changed (the guide: "the first execution is immediate"); a cron
//! schedule ticks on the minutes its fields name.

mod cron;
#[cfg(test)]
mod tests;

use lamina_common::{ApiError, ApiResult};

pub use cron::Cron;

/// AWS's one message for every malformed expression.
pub const INVALID: &str = "Parameter ScheduleExpression is not valid.";

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(N unit)`: every `period_ms`.
    Rate { period_ms: i64 },
    /// `cron(min hour day-of-month month day-of-week year)`.
    Cron(Box<Cron>),
}

fn invalid() -> ApiError {
    ApiError::ValidationMessage(INVALID.to_owned())
}

impl Schedule {
    /// Parses `rate(...)` or `cron(...)`; anything else is AWS's ValidationException.
    pub fn parse(expression: &str) -> ApiResult<Self> {
        let e = expression.trim();
        if let Some(body) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            return parse_rate(body).ok_or_else(invalid);
        }
        if let Some(body) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Cron::parse(body).map(|c| Self::Cron(Box::new(c))).ok_or_else(invalid);
        }
        Err(invalid())
    }

    /// The first tick of a schedule set at `now_ms`: at once for a rate, the next matching minute
    /// for a cron; `None` when a cron matches no future minute (e.g. a past year).
    pub fn first_tick(&self, now_ms: i64) -> Option<i64> {
        match self {
            Self::Rate { .. } => Some(now_ms),
            Self::Cron(c) => c.next_after(now_ms),
        }
    }

    /// The tick after `tick` (the one just fired) that is strictly later than `now_ms`: ticks
    /// missed meanwhile are skipped, so a long outage costs one late firing, not a burst.
    pub fn next_after(&self, tick: i64, now_ms: i64) -> Option<i64> {
        match self {
            Self::Rate { period_ms } => {
                let behind = (now_ms - tick).max(0);
                let periods = behind / period_ms + 1;
                periods.checked_mul(*period_ms).and_then(|d| tick.checked_add(d))
            }
            Self::Cron(c) => c.next_after(now_ms.max(tick)),
        }
    }
}

/// `N minute|minutes|hour|hours|day|days`: the unit is singular exactly when N is 1.
fn parse_rate(body: &str) -> Option<Schedule> {
    let mut parts = body.split_whitespace();
    let (value, unit) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = value.parse().ok()?;
    let (singular, unit_ms) = match unit {
        "minute" => (true, 60_000),
        "minutes" => (false, 60_000),
        "hour" => (true, 3_600_000),
        "hours" => (false, 3_600_000),
        "day" => (true, 86_400_000),
        "days" => (false, 86_400_000),
        _ => return None,
    };
    if n < 1 || singular != (n == 1) {
        return None;
    }
    Some(Schedule::Rate { period_ms: n.checked_mul(unit_ms)? })
}
