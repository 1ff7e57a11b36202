//! Six-field cron: `Minutes Hours Day-of-month Month Day-of-week Year`, UTC.
//!
//! Each field takes `,` lists of `*`, `N`, `A-B` (wrapping past the field's end, as Quartz does:
//! `FRI-MON`, `22-2`), with an optional `/step` (`0/15`, `*/5`, `5-40/10`). Months and weekdays also
//! take names (`JAN`, `MON`; any case). Weekdays are 1-7 with 1 = Sunday. Day-of-month adds `L`
//! (last day), `LW` (last weekday) and `NW` (weekday nearest the Nth, never leaving the month);
//! day-of-week adds `L` (Saturday, the week's last day), `NL` (the month's last weekday N) and
//! `N#K` (the Kth weekday N). Exactly one of the two day fields is `?`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 2199;

/// A set of values of one field, `min..=max`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Values {
    min: u32,
    member: Vec<bool>,
}

impl Values {
    fn empty(min: u32, max: u32) -> Self {
        Self { min, member: vec![false; (max - min + 1) as usize] }
    }

    fn max(&self) -> u32 {
        self.min + self.member.len() as u32 - 1
    }

    fn insert(&mut self, v: u32) {
        if let Some(slot) = v.checked_sub(self.min).and_then(|i| self.member.get_mut(i as usize)) {
            *slot = true;
        }
    }

    fn contains(&self, v: u32) -> bool {
        v.checked_sub(self.min).and_then(|i| self.member.get(i as usize)).copied().unwrap_or(false)
    }

    fn is_empty(&self) -> bool {
        !self.member.contains(&true)
    }
}

/// Day-of-month, when it is not `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MonthDays {
    days: Values,
    last: bool,
    last_weekday: bool,
    nearest_weekday: Vec<u32>,
}

/// Day-of-week, when it is not `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WeekDays {
    days: Values,
    /// `NL`: the last weekday N of the month.
    last_of: Vec<u32>,
    /// `N#K`: the Kth weekday N of the month.
    nth: Vec<(u32, u32)>,
}

/// Which of the two day fields selects the days (the other is `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    OfMonth(MonthDays),
    OfWeek(WeekDays),
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Values,
    hours: Values,
    days: Days,
    months: Values,
    years: Values,
}

/// Parses a number or (when `names` is given) a name whose position + 1 is its value.
fn number(text: &str, names: Option<&[&str]>) -> Option<u32> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let names = names?;
    names.iter().position(|n| n.eq_ignore_ascii_case(text)).map(|i| i as u32 + 1)
}

/// Adds one list item (`*`, `N`, `A-B`, each with an optional `/step`) to `set`.
fn range_item(item: &str, set: &mut Values, names: Option<&[&str]>) -> Option<()> {
    let (min, max) = (set.min, set.max());
    let (span, step) = match item.split_once('/') {
        Some((span, step)) => {
            let step = number(step, None)?;
            if step == 0 || step > max - min + 1 {
                return None;
            }
            (span, Some(step))
        }
        None => (item, None),
    };
    let (from, to) = if span == "*" {
        (min, max)
    } else if let Some((a, b)) = span.split_once('-') {
        (number(a, names)?, number(b, names)?)
    } else {
        let start = number(span, names)?;
        // `N/step` runs from N to the field's end; a bare `N` is just N.
        (start, if step.is_some() { max } else { start })
    };
    if !(min..=max).contains(&from) || !(min..=max).contains(&to) {
        return None;
    }
    let step = step.unwrap_or(1);
    // A range whose end is before its start wraps past the field's end.
    let length = if to >= from { to - from } else { max - from + 1 + to - min };
    let mut offset = 0;
    while offset <= length {
        let v = from + offset;
        set.insert(if v > max { v - (max - min + 1) } else { v });
        offset += step;
    }
    Some(())
}

fn field(text: &str, min: u32, max: u32, names: Option<&[&str]>) -> Option<Values> {
    let mut set = Values::empty(min, max);
    for item in text.split(',') {
        range_item(item, &mut set, names)?;
    }
    Some(set)
}

fn month_days(text: &str) -> Option<MonthDays> {
    let mut out = MonthDays { days: Values::empty(1, 31), last: false, last_weekday: false, nearest_weekday: vec![] };
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            out.last = true;
        } else if upper == "LW" {
            out.last_weekday = true;
        } else if let Some(n) = upper.strip_suffix('W') {
            let n = number(n, None).filter(|n| (1..=31).contains(n))?;
            out.nearest_weekday.push(n);
        } else {
            range_item(item, &mut out.days, None)?;
        }
    }
    Some(out)
}

fn week_days(text: &str) -> Option<WeekDays> {
    let mut out = WeekDays { days: Values::empty(1, 7), last_of: vec![], nth: vec![] };
    let weekday = |t: &str| number(t, Some(&WEEKDAYS)).filter(|d| (1..=7).contains(d));
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            out.days.insert(7);
        } else if let Some((day, k)) = upper.split_once('#') {
            let k = number(k, None).filter(|k| (1..=5).contains(k))?;
            out.nth.push((weekday(day)?, k));
        } else if let Some(day) = upper.strip_suffix('L') {
            out.last_of.push(weekday(day)?);
        } else {
            range_item(item, &mut out.days, Some(&WEEKDAYS))?;
        }
    }
    Some(out)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    next.and_then(|d| d.pred_opt()).map(|d| d.day()).unwrap_or(28)
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The weekday nearest day `n` of the date's month, within the month (Quartz's `nW`).
fn nearest_weekday(date: NaiveDate, n: u32) -> Option<u32> {
    let last = days_in_month(date.year(), date.month());
    if n > last {
        return None;
    }
    let target = date.with_day(n)?;
    Some(match target.weekday() {
        Weekday::Sat if n == 1 => 3,
        Weekday::Sat => n - 1,
        Weekday::Sun if n == last => n - 2,
        Weekday::Sun => n + 1,
        _ => n,
    })
}

impl MonthDays {
    fn matches(&self, date: NaiveDate) -> bool {
        let (day, last) = (date.day(), days_in_month(date.year(), date.month()));
        if self.days.contains(day) || (self.last && day == last) {
            return true;
        }
        if self.last_weekday {
            let mut d = last;
            while let Some(candidate) = date.with_day(d) {
                if is_weekday(candidate) {
                    break;
                }
                d -= 1;
            }
            if day == d {
                return true;
            }
        }
        self.nearest_weekday.iter().any(|n| nearest_weekday(date, *n) == Some(day))
    }
}

impl WeekDays {
    fn matches(&self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_sunday() + 1;
        let (day, last) = (date.day(), days_in_month(date.year(), date.month()));
        self.days.contains(weekday)
            || self.last_of.iter().any(|w| *w == weekday && day + 7 > last)
            || self.nth.iter().any(|(w, k)| *w == weekday && (day - 1) / 7 + 1 == *k)
    }
}

impl Cron {
    /// Parses the six space-separated fields (the text inside `cron(...)`).
    pub fn parse(body: &str) -> Option<Self> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields.as_slice() else { return None };
        let days = match (*dom, *dow) {
            ("?", "?") => return None,
            ("?", dow) => Days::OfWeek(week_days(dow)?),
            (dom, "?") => Days::OfMonth(month_days(dom)?),
            _ => return None,
        };
        let cron = Self {
            minutes: field(minutes, 0, 59, None)?,
            hours: field(hours, 0, 23, None)?,
            days,
            months: field(month, 1, 12, Some(&MONTHS))?,
            years: field(year, FIRST_YEAR, LAST_YEAR, None)?,
        };
        let empty = [&cron.minutes, &cron.hours, &cron.months, &cron.years].iter().any(|v| v.is_empty());
        (!empty).then_some(cron)
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        match &self.days {
            Days::OfMonth(d) => d.matches(date),
            Days::OfWeek(d) => d.matches(date),
        }
    }

    /// The first minute strictly after `after_ms` that the expression names; `None` when there is
    /// none before the end of 2199.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = after_ms.div_euclid(60_000).checked_add(1)?.checked_mul(60_000)?;
        let mut t: NaiveDateTime = DateTime::from_timestamp_millis(start)?.naive_utc();
        let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
        loop {
            let year = u32::try_from(t.year()).ok()?;
            if year > LAST_YEAR {
                return None;
            }
            if !self.years.contains(year) {
                t = midnight(NaiveDate::from_ymd_opt(t.year() + 1, 1, 1)?);
                continue;
            }
            if !self.months.contains(t.month()) {
                let first = if t.month() == 12 {
                    NaiveDate::from_ymd_opt(t.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(t.year(), t.month() + 1, 1)
                };
                t = midnight(first?);
                continue;
            }
            if !self.day_matches(t.date()) {
                t = midnight(t.date().succ_opt()?);
                continue;
            }
            if !self.hours.contains(t.hour()) {
                t = t.with_minute(0)? + chrono::Duration::hours(1);
                continue;
            }
            if !self.minutes.contains(t.minute()) {
                t += chrono::Duration::minutes(1);
                continue;
            }
            return Some(t.and_utc().timestamp_millis());
        }
    }
}
