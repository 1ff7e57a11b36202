//! The AWS query protocol of CloudWatch: a form body (`Action=...&Version=2010-08-01&...`, lists
//! flattened as `Dimensions.member.1.Name`) in, XML out.
//!
//! The form becomes the JSON request object the service takes: member types come from the member
//! name (CloudWatch's request shapes use each name with one type), timestamps (ISO 8601 on the
//! wire) become epoch seconds. The reply object becomes `<{Op}Response><{Op}Result>...` with lists
//! as `<member>` elements and `Timestamp`/`Timestamps` back in ISO 8601.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// XML namespace of CloudWatch's query API.
pub const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";
/// The one API version served.
pub const VERSION: &str = "2010-08-01";

/// More `.`-separated parts than any CloudWatch member path has.
const MAX_PATH: usize = 12;

/// Members that are integers, booleans or timestamps (every other member is a string).
fn coerce(member: &str, raw: &str) -> Result<Value, String> {
    match member {
        "Period" | "MaxDatapoints" | "MaxRecords" => {
            raw.parse::<i64>().map(Value::from).map_err(|_| format!("Value ({raw}) for parameter {member} is invalid."))
        }
        "ReturnData" | "IncludeLinkedAccounts" => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("Value ({raw}) for parameter {member} is invalid.")),
        },
        "StartTime" | "EndTime" | "Timestamp" => parse_time(raw)
            .ok_or_else(|| format!("Value ({raw}) for parameter {member} is invalid. Timestamp must be in ISO 8601.")),
        _ => Ok(Value::String(raw.to_owned())),
    }
}

/// ISO 8601 (what SDKs send) or epoch seconds, as epoch seconds.
fn parse_time(raw: &str) -> Option<Value> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        let t = t.with_timezone(&Utc);
        return Some(match t.timestamp_subsec_millis() {
            0 => Value::from(t.timestamp()),
            _ => serde_json::Number::from_f64(t.timestamp_millis() as f64 / 1000.0).map(Value::Number)?,
        });
    }
    // Without an offset ("2026-12-07T15:00:00"): UTC, as CloudWatch reads it.
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(Value::from(t.and_utc().timestamp()));
    }
    raw.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
}

/// A member path's value while the form is read: lists are keyed by their 1-based index.
enum Node {
    Leaf(String),
    Struct(BTreeMap<String, Node>),
    List(BTreeMap<u32, Node>),
}

/// The parsed form: `Action`, and the request object.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub action: Option<String>,
    pub version: Option<String>,
    pub params: Value,
}

/// Reads a query-protocol form. Errors are the message of a `MalformedQueryString`-like refusal.
pub fn parse(body: &[u8]) -> Result<Request, String> {
    let mut action = None;
    let mut version = None;
    let mut root = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "Action" => action = Some(value.into_owned()),
            "Version" => version = Some(value.into_owned()),
            _ => insert(&mut root, &key, value.into_owned())?,
        }
    }
    let params = to_json(Node::Struct(root), "")?;
    Ok(Request { action, version, params })
}

fn insert(root: &mut BTreeMap<String, Node>, key: &str, value: String) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() > MAX_PATH || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("Malformed parameter name: {key}"));
    }
    let Some((first, mut rest)) = parts.split_first() else { return Ok(()) };
    let mut node = root.entry((*first).to_owned()).or_insert_with(|| Node::Struct(BTreeMap::new()));
    loop {
        if rest.is_empty() {
            // A list sent empty is `Name=` (botocore); a value where a structure was seen is a conflict.
            if matches!(node, Node::Struct(m) if m.is_empty()) {
                *node = Node::Leaf(value);
                return Ok(());
            }
            return Err(format!("Duplicate or conflicting parameter: {key}"));
        }
        if let ["member", index, tail @ ..] = rest {
            let index: u32 = index
                .parse()
                .ok()
                .filter(|&i| i >= 1)
                .ok_or_else(|| format!("Malformed list index in parameter name: {key}"))?;
            if matches!(node, Node::Struct(m) if m.is_empty()) {
                *node = Node::List(BTreeMap::new());
            }
            let Node::List(items) = node else { return Err(format!("Conflicting parameter: {key}")) };
            rest = tail;
            node = items.entry(index).or_insert_with(|| Node::Struct(BTreeMap::new()));
            continue;
        }
        let (Node::Struct(members), [name, tail @ ..]) = (node, rest) else {
            return Err(format!("Conflicting parameter: {key}"));
        };
        rest = tail;
        node = members.entry((*name).to_owned()).or_insert_with(|| Node::Struct(BTreeMap::new()));
    }
}

fn to_json(node: Node, member: &str) -> Result<Value, String> {
    Ok(match node {
        Node::Leaf(raw) if raw.is_empty() && is_list(member) => Value::Array(Vec::new()),
        Node::Leaf(raw) => coerce(member, &raw)?,
        Node::Struct(members) => {
            let mut out = Map::new();
            for (name, node) in members {
                let value = to_json(node, &name)?;
                out.insert(name, value);
            }
            Value::Object(out)
        }
        // A list's members carry the list's own name, so `Statistics.member.1` stays a string and
        // `Timestamps.member.1` would be a time.
        Node::List(items) => Value::Array(items.into_values().map(|n| to_json(n, member)).collect::<Result<_, _>>()?),
    })
}

fn is_list(member: &str) -> bool {
    matches!(member, "Dimensions" | "Statistics" | "ExtendedStatistics" | "MetricDataQueries" | "OwningAccounts")
}

/// `<{op}Response><{op}Result>{reply}</{op}Result><ResponseMetadata>...`.
pub fn response(op: &str, reply: &Value, request_id: &str) -> String {
    let mut out = format!("<{op}Response xmlns=\"{XMLNS}\">\n  <{op}Result>");
    if let Value::Object(members) = reply {
        for (name, value) in members {
            element(&mut out, name, value, name);
        }
    }
    let _ = write!(
        out,
        "</{op}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{op}Response>\n",
        escape(request_id)
    );
    out
}

/// `<ErrorResponse>`, as query services answer errors.
pub fn error(fault: &str, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    \
         <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(fault),
        escape(code),
        escape(message),
        escape(request_id)
    )
}

/// One member as an element; `member` is the name whose type rules its scalars (a list's own name
/// for its items).
fn element(out: &mut String, name: &str, value: &Value, member: &str) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            let _ = write!(out, "<{name}>");
            for item in items {
                element(out, "member", item, member);
            }
            let _ = write!(out, "</{name}>");
        }
        // A map (DatapointValueMap) is a list of key/value entries in this protocol.
        Value::Object(entries) if member == "ExtendedStatistics" => {
            let _ = write!(out, "<{name}>");
            for (key, value) in entries {
                let _ = write!(out, "<entry><key>{}</key>", escape(key));
                element(out, "value", value, "");
                out.push_str("</entry>");
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Object(members) => {
            let _ = write!(out, "<{name}>");
            for (child, value) in members {
                element(out, child, value, child);
            }
            let _ = write!(out, "</{name}>");
        }
        scalar => {
            let text = match (member, scalar) {
                ("Timestamp" | "Timestamps", Value::Number(n)) => iso8601(n.as_f64().unwrap_or_default()),
                (_, Value::String(s)) => escape(s),
                (_, other) => other.to_string(),
            };
            let _ = write!(out, "<{name}>{text}</{name}>");
        }
    }
}

/// Epoch seconds as CloudWatch writes times: `2026-12-07T15:00:00Z` (milliseconds when present).
pub fn iso8601(epoch_seconds: f64) -> String {
    let millis = (epoch_seconds * 1000.0).round() as i64;
    let Some(t) = DateTime::<Utc>::from_timestamp_millis(millis) else { return String::new() };
    let format = if millis % 1000 == 0 { SecondsFormat::Secs } else { SecondsFormat::Millis };
    t.to_rfc3339_opts(format, true)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn botocore_forms_become_request_objects() {
        let body = "Action=GetMetricStatistics&Version=2010-08-01&Namespace=AWS%2FLambda&MetricName=Invocations\
                    &Dimensions.member.1.Name=FunctionName&Dimensions.member.1.Value=f\
                    &Dimensions.member.2.Name=Resource&Dimensions.member.2.Value=f%3Alive\
                    &StartTime=2026-12-07T15%3A00%3A00Z&EndTime=2026-12-07T16%3A00%3A00.500Z&Period=60\
                    &Statistics.member.1=Sum&Statistics.member.2=SampleCount";
        let request = parse(body.as_bytes()).expect("parses");
        assert_eq!(request.action.as_deref(), Some("GetMetricStatistics"));
        assert_eq!(request.version.as_deref(), Some("2010-08-01"));
        assert_eq!(
            request.params,
            json!({"Namespace": "AWS/Lambda", "MetricName": "Invocations",
                   "Dimensions": [{"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:live"}],
                   "StartTime": 1_796_655_600, "EndTime": 1_796_659_200.5, "Period": 60,
                   "Statistics": ["Sum", "SampleCount"]})
        );
    }

    #[test]
    fn nested_queries_and_empty_lists() {
        let body = "Action=GetMetricData&MetricDataQueries.member.1.Id=m1\
                    &MetricDataQueries.member.1.MetricStat.Metric.Namespace=AWS%2FLambda\
                    &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=FunctionName\
                    &MetricDataQueries.member.1.MetricStat.Period=300&MetricDataQueries.member.1.ReturnData=false\
                    &Dimensions=&MaxDatapoints=10";
        let request = parse(body.as_bytes()).expect("parses");
        let q = &request.params["MetricDataQueries"][0];
        assert_eq!(q["MetricStat"]["Period"], 300);
        assert_eq!(q["ReturnData"], false);
        assert_eq!(q["MetricStat"]["Metric"]["Dimensions"][0]["Name"], "FunctionName");
        assert_eq!(request.params["Dimensions"], json!([]));
        assert_eq!(request.params["MaxDatapoints"], 10);
    }

    #[test]
    fn bad_forms_are_refused() {
        for body in [
            "Action=X&Period=abc",
            "Action=X&StartTime=yesterday",
            "Action=X&Dimensions.member.0.Name=a",
            "Action=X&Dimensions.member.x.Name=a",
            "Action=X&A=1&A.B=2",
            "Action=X&A..B=1",
            "Action=X&a.b.c.d.e.f.g.h.i.j.k.l.m=1",
        ] {
            assert!(parse(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn replies_are_query_xml() {
        let reply = json!({"Label": "Invocations", "Datapoints": [
            {"Timestamp": 1_796_655_600, "Sum": 3.0, "Unit": "Count"}], "Odd": "<&>"});
        let xml = response("GetMetricStatistics", &reply, "rid");
        assert!(xml.starts_with(&format!("<GetMetricStatisticsResponse xmlns=\"{XMLNS}\">")), "{xml}");
        assert!(xml.contains(
            "<Datapoints><member><Sum>3.0</Sum><Timestamp>2026-12-07T15:00:00Z</Timestamp><Unit>Count</Unit></member></Datapoints>"
        ), "{xml}");
        assert!(xml.contains("<Odd>&lt;&amp;&gt;</Odd>"));
        assert!(xml.contains("<RequestId>rid</RequestId>"));
        let err = error("Sender", "InvalidParameterValue", "bad <period>", "rid");
        assert!(err.contains("<Code>InvalidParameterValue</Code>") && err.contains("bad &lt;period&gt;"));
        assert_eq!(iso8601(1_796_655_600.25), "2026-12-07T15:00:00.250Z");
    }
}
