use chrono::NaiveDateTime;

use super::*;

/// `2024-03-10T09:59:30` (UTC) as epoch milliseconds.
fn at(text: &str) -> i64 {
    let format = if text.len() > 16 { "%Y-%m-%dT%H:%M:%S%.f" } else { "%Y-%m-%dT%H:%M" };
    NaiveDateTime::parse_from_str(text, format).expect("test instant").and_utc().timestamp_millis()
}

fn show(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_else(|| "never".into())
}

#[test]
fn cron_next_ticks() {
    // (expression, after, next tick or "never")
    let table = [
        // The guide's examples.
        ("cron(0 10 * * ? *)", "2024-03-10T09:59:30", "2024-03-10T10:00"),
        ("cron(0 10 * * ? *)", "2024-03-10T10:00", "2024-03-11T10:00"),
        ("cron(15 12 * * ? *)", "2024-03-10T12:15:00.001", "2024-03-11T12:15"),
        ("cron(0 18 ? * MON-FRI *)", "2024-03-08T18:00", "2024-03-11T18:00"),
        ("cron(0 18 ? * MON-FRI *)", "2024-03-08T17:59:59.999", "2024-03-08T18:00"),
        ("cron(0 8 1 * ? *)", "2024-01-15T00:00", "2024-02-01T08:00"),
        ("cron(0 8 1 * ? *)", "2024-12-01T08:00", "2025-01-01T08:00"),
        ("cron(0/10 * ? * MON-FRI *)", "2024-03-09T12:00", "2024-03-11T00:00"),
        ("cron(0/10 * ? * MON-FRI *)", "2024-03-11T00:05", "2024-03-11T00:10"),
        ("cron(0/5 8-17 ? * MON-FRI *)", "2024-03-11T17:56", "2024-03-12T08:00"),
        ("cron(0/5 8-17 ? * MON-FRI *)", "2024-03-11T17:54", "2024-03-11T17:55"),
        // Every minute.
        ("cron(* * * * ? *)", "2024-03-11T17:54:10", "2024-03-11T17:55"),
        ("cron(* * ? * * *)", "2024-12-31T23:59", "2025-01-01T00:00"),
        // Steps, lists and ranges.
        ("cron(*/20 * * * ? *)", "2024-03-11T10:41", "2024-03-11T11:00"),
        ("cron(5-40/10 * * * ? *)", "2024-03-11T10:36", "2024-03-11T11:05"),
        ("cron(5-40/10 * * * ? *)", "2024-03-11T10:14", "2024-03-11T10:15"),
        ("cron(5/20 * * * ? *)", "2024-03-11T10:46", "2024-03-11T11:05"),
        ("cron(0,30 9,17 * * ? *)", "2024-03-11T09:30", "2024-03-11T17:00"),
        ("cron(0 22-2 * * ? *)", "2024-03-10T02:30", "2024-03-10T22:00"),
        ("cron(0 22-2 * * ? *)", "2024-03-10T23:30", "2024-03-11T00:00"),
        ("cron(0 0 ? * FRI-MON *)", "2024-03-12T00:00", "2024-03-15T00:00"),
        ("cron(0 0 ? * FRI-MON *)", "2024-03-17T00:00", "2024-03-18T00:00"),
        ("cron(0 0 ? * 2-6 *)", "2024-03-08T12:00", "2024-03-11T00:00"),
        // Names in any case, numbers for weekdays (1 = Sunday).
        ("cron(30 6 ? JAN,JUL SUN *)", "2024-03-11T00:00", "2024-07-07T06:30"),
        ("cron(0 0 ? jan mon *)", "2024-01-01T00:00", "2024-01-08T00:00"),
        ("cron(0 0 ? * 1 *)", "2024-03-11T00:00", "2024-03-17T00:00"),
        ("cron(0 0 ? * 7 *)", "2024-03-11T00:00", "2024-03-16T00:00"),
        ("cron(0 0 1 FEB-APR ? *)", "2024-04-01T00:00", "2025-02-01T00:00"),
        // Last day of the month (leap years too).
        ("cron(0 0 L * ? *)", "2024-02-10T00:00", "2024-02-29T00:00"),
        ("cron(0 0 L * ? *)", "2023-02-10T00:00", "2023-02-28T00:00"),
        ("cron(0 0 L * ? *)", "2024-04-30T00:00", "2024-05-31T00:00"),
        // Last weekday of the month: March 2024 ends on a Sunday.
        ("cron(0 0 LW * ? *)", "2024-03-01T00:00", "2024-03-29T00:00"),
        // Nearest weekday, never leaving the month.
        ("cron(0 12 5W * ? *)", "2024-10-01T00:00", "2024-10-04T12:00"),
        ("cron(0 12 5W * ? *)", "2025-01-01T00:00", "2025-01-06T12:00"),
        ("cron(0 12 15W * ? *)", "2024-03-01T00:00", "2024-03-15T12:00"),
        ("cron(0 0 1W * ? *)", "2024-05-31T00:00", "2024-06-03T00:00"),
        ("cron(0 0 1W * ? *)", "2024-08-31T00:00", "2024-09-02T00:00"),
        ("cron(0 0 30W * ? *)", "2024-11-01T00:00", "2024-11-29T00:00"),
        ("cron(0 0 31W * ? *)", "2024-03-01T00:00", "2024-03-29T00:00"),
        ("cron(0 0 31W * ? *)", "2024-04-01T00:00", "2024-05-31T00:00"),
        // Nth weekday of the month; last weekday N; `L` alone is Saturday.
        ("cron(0 9 ? * 3#2 *)", "2024-03-01T00:00", "2024-03-12T09:00"),
        ("cron(0 9 ? * TUE#2 *)", "2024-03-12T09:00", "2024-04-09T09:00"),
        ("cron(0 9 ? * MON#5 *)", "2024-03-01T00:00", "2024-04-29T09:00"),
        ("cron(0 0 ? * 6L *)", "2024-03-01T00:00", "2024-03-29T00:00"),
        ("cron(0 0 ? * L *)", "2024-03-06T00:00", "2024-03-09T00:00"),
        // Years.
        ("cron(0 0 1 1 ? 2030)", "2024-03-01T00:00", "2030-01-01T00:00"),
        ("cron(0 0 1 1 ? 2024-2025)", "2025-01-01T00:00", "never"),
        ("cron(0 0 1 1 ? 2020)", "2024-03-01T00:00", "never"),
        ("cron(0 0 29 2 ? *)", "2024-03-01T00:00", "2028-02-29T00:00"),
        // A date that never exists.
        ("cron(0 0 30 2 ? *)", "2024-03-01T00:00", "never"),
    ];
    for (expression, after, want) in table {
        let Ok(Schedule::Cron(cron)) = Schedule::parse(expression) else { panic!("{expression} parses as cron") };
        assert_eq!(show(cron.next_after(at(after))), want, "{expression} after {after}");
    }
}

#[test]
fn rates_tick_from_their_start() {
    let five = Schedule::parse("rate(5 minutes)").expect("valid");
    assert_eq!(five, Schedule::Rate { period_ms: 300_000 });
    let t = at("2024-03-11T10:00:07");
    assert_eq!(five.first_tick(t), Some(t), "a new rate fires at once");
    assert_eq!(five.next_after(t, t + 1), Some(t + 300_000));
    assert_eq!(five.next_after(t, t + 300_000), Some(t + 600_000), "strictly after now");
    // An outage: missed ticks are skipped, the phase kept.
    assert_eq!(five.next_after(t, t + 17 * 60_000), Some(t + 20 * 60_000));
    let cases = [
        ("rate(1 minute)", 60_000),
        ("rate(2 minutes)", 120_000),
        ("rate(1 hour)", 3_600_000),
        ("rate(12 hours)", 43_200_000),
        ("rate(1 day)", 86_400_000),
        ("rate(7 days)", 604_800_000),
        ("rate( 3  minutes )", 180_000),
    ];
    for (expression, period_ms) in cases {
        assert_eq!(Schedule::parse(expression).expect(expression), Schedule::Rate { period_ms }, "{expression}");
    }
}

#[test]
fn cron_first_tick_and_next() {
    let daily = Schedule::parse("cron(0 10 * * ? *)").expect("valid");
    assert_eq!(show(daily.first_tick(at("2024-03-11T10:00"))), "2024-03-12T10:00");
    // After a three-day outage the tick that follows now, not the missed ones.
    let tick = at("2024-03-11T10:00");
    assert_eq!(show(daily.next_after(tick, at("2024-03-14T11:00"))), "2024-03-15T10:00");
    assert_eq!(show(daily.next_after(tick, tick + 1000)), "2024-03-12T10:00");
}

#[test]
fn malformed_expressions_are_refused_with_aws_message() {
    let bad = [
        "",
        "rate",
        "rate()",
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(1 hours)",
        "rate(2 day)",
        "rate(0 minutes)",
        "rate(-1 minutes)",
        "rate(+5 minutes)",
        "rate(1.5 hours)",
        "rate(1 week)",
        "rate(30 seconds)",
        "rate(1 second)",
        "rate(minutes)",
        "rate(5)",
        "rate(5 Minutes)",
        "rate 5 minutes",
        "rate(5 minutes",
        "rate(99999999999999999999 minutes)",
        "cron(0 10 * * ?)",
        "cron(0 10 * * ? * *)",
        "cron(0 10 * * * *)",
        "cron(0 10 1 * MON *)",
        "cron(0 10 ? * ? *)",
        "cron(60 10 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 0 32 * ? *)",
        "cron(0 0 0 * ? *)",
        "cron(0 0 * 13 ? *)",
        "cron(0 0 * 0 ? *)",
        "cron(0 0 ? * 8 *)",
        "cron(0 0 ? * 0 *)",
        "cron(0 0 1 1 ? 1969)",
        "cron(0 0 1 1 ? 2200)",
        "cron(0/0 * * * ? *)",
        "cron(0/61 * * * ? *)",
        "cron(a * * * ? *)",
        "cron(-1 * * * ? *)",
        "cron(1- * * * ? *)",
        "cron(, * * * ? *)",
        "cron(0 0 ? * MON#6 *)",
        "cron(0 0 ? * MON#0 *)",
        "cron(0 0 ? * 9L *)",
        "cron(0 0 L * L *)",
        "cron(0 0 W * ? *)",
        "cron(0 0 32W * ? *)",
        "cron(0 0 ? * FOO *)",
        "cron(0 0 1 JAN-FOO ? *)",
        "cron(0 0 MON * ? *)",
        "cron(0 0 1 MON ? *)",
        "cron(0 0 ? * JAN *)",
        "cron(0 0 ?,1 * ? *)",
        "CRON(0 10 * * ? *)",
        "Rate(5 minutes)",
        "at(2024-01-01T00:00:00)",
        "0 10 * * ? *",
    ];
    for expression in bad {
        match Schedule::parse(expression) {
            Err(ApiError::ValidationMessage(m)) => assert_eq!(m, INVALID, "{expression}"),
            other => panic!("{expression:?} should be refused, got {other:?}"),
        }
    }
}
