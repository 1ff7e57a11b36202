//! The CBOR of Smithy's RPC v2 protocol, to and from the JSON the observability service speaks.
//!
//! Only what CloudWatch's three operations carry is needed, so this is a small codec rather than a
//! dependency: requests decode to JSON with timestamps (tag 1) as epoch-second numbers, which is
//! what the service takes; replies encode every number as a double (CloudWatch's outputs have no
//! integer members) and the members named `Timestamp`/`Timestamps` as tag 1.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// Nesting deeper than any CloudWatch request is refused (the decoder recurses).
const MAX_DEPTH: usize = 32;

/// Why a request body is not the CBOR of a request object.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// Decodes one CBOR data item filling all of `bytes`; an empty body is the empty object.
pub fn decode(bytes: &[u8]) -> Result<Value, Malformed> {
    if bytes.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.item(0)?;
    if reader.pos != bytes.len() {
        return Err(malformed("trailing bytes after the CBOR data item"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// A data item's head: major type, and argument (`None`: indefinite length).
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
}

const BREAK: u8 = 0xff;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| malformed("truncated CBOR"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn head(&mut self) -> Result<Head, Malformed> {
        let first = self.byte()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.byte()?)),
            25 => Some(u64::from(u16::from_be_bytes(self.array()?))),
            26 => Some(u64::from(u32::from_be_bytes(self.array()?))),
            27 => Some(u64::from_be_bytes(self.array()?)),
            31 => None,
            _ => return Err(malformed("reserved CBOR additional information")),
        };
        Ok(Head { major, info, arg })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A definite length as a count no larger than the bytes left (each element takes at least one).
    fn length(&self, n: u64) -> Result<usize, Malformed> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.pos)
            .ok_or_else(|| malformed("CBOR length past the end of the body"))
    }

    fn item(&mut self, depth: usize) -> Result<Value, Malformed> {
        if depth > MAX_DEPTH {
            return Err(malformed("CBOR nested too deeply"));
        }
        let head = self.head()?;
        match (head.major, head.arg) {
            (0, Some(n)) => Ok(Value::Number(n.into())),
            (1, Some(n)) => Ok(match i64::try_from(n) {
                Ok(n) => Value::Number((-1 - n).into()),
                Err(_) => number(-1.0 - n as f64)?,
            }),
            (2, _) => {
                let bytes = self.chunks(2, head.arg)?;
                Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
            }
            (3, _) => {
                let bytes = self.chunks(3, head.arg)?;
                String::from_utf8(bytes).map(Value::String).map_err(|_| malformed("CBOR text is not UTF-8"))
            }
            (4, len) => {
                let mut items = Vec::new();
                match len {
                    Some(n) => {
                        for _ in 0..self.length(n)? {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while self.peek() != Some(BREAK) {
                            items.push(self.item(depth + 1)?);
                        }
                        self.pos += 1;
                    }
                }
                Ok(Value::Array(items))
            }
            (5, len) => {
                let mut map = Map::new();
                match len {
                    Some(n) => {
                        for _ in 0..self.length(n)? {
                            self.entry(&mut map, depth)?;
                        }
                    }
                    None => {
                        while self.peek() != Some(BREAK) {
                            self.entry(&mut map, depth)?;
                        }
                        self.pos += 1;
                    }
                }
                Ok(Value::Object(map))
            }
            // Tag 1 (epoch-based date/time) is a number already; other tags are read through.
            (6, Some(_)) => self.item(depth + 1),
            (7, _) => self.simple(head),
            _ => Err(malformed("indefinite length on a CBOR type that has none")),
        }
    }

    fn entry(&mut self, map: &mut Map<String, Value>, depth: usize) -> Result<(), Malformed> {
        let Value::String(key) = self.item(depth + 1)? else {
            return Err(malformed("CBOR map key is not text"));
        };
        let value = self.item(depth + 1)?;
        // Smithy's null for an absent optional member.
        if !value.is_null() {
            map.insert(key, value);
        }
        Ok(())
    }

    /// The bytes of a byte or text string, definite or as indefinite-length chunks of its own type.
    fn chunks(&mut self, major: u8, len: Option<u64>) -> Result<Vec<u8>, Malformed> {
        if let Some(n) = len {
            let n = self.length(n)?;
            return Ok(self.take(n)?.to_vec());
        }
        let mut out = Vec::new();
        while self.peek() != Some(BREAK) {
            let chunk = self.head()?;
            let (true, Some(n)) = (chunk.major == major, chunk.arg) else {
                return Err(malformed("bad chunk in an indefinite-length CBOR string"));
            };
            let n = self.length(n)?;
            out.extend_from_slice(self.take(n)?);
        }
        self.pos += 1;
        Ok(out)
    }

    fn simple(&mut self, head: Head) -> Result<Value, Malformed> {
        match (head.info, head.arg) {
            (20, _) => Ok(Value::Bool(false)),
            (21, _) => Ok(Value::Bool(true)),
            (22 | 23, _) => Ok(Value::Null),
            (25, Some(bits)) => number(half_to_f64(bits as u16)),
            (26, Some(bits)) => number(f64::from(f32::from_bits(bits as u32))),
            (27, Some(bits)) => number(f64::from_bits(bits)),
            _ => Err(malformed("unsupported CBOR simple value")),
        }
    }
}

fn number(f: f64) -> Result<Value, Malformed> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| malformed("CBOR number is not finite"))
}

/// IEEE 754 half precision (RFC 8949 appendix D).
fn half_to_f64(half: u16) -> f64 {
    let exp = (half >> 10) & 0x1f;
    let mant = f64::from(half & 0x3ff);
    let value = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mant + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if half & 0x8000 != 0 { -value } else { value }
}

/// Encodes a reply object. `Timestamp`/`Timestamps` members become tag 1; numbers are doubles.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value, false);
    out
}

fn write(out: &mut Vec<u8>, value: &Value, timestamp: bool) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Number(n) => {
            if timestamp {
                out.push(0xc1);
            }
            out.push(0xfb);
            out.extend_from_slice(&n.as_f64().unwrap_or_default().to_be_bytes());
        }
        Value::String(s) => {
            write_head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            write_head(out, 4, items.len() as u64);
            for item in items {
                write(out, item, timestamp);
            }
        }
        Value::Object(map) => {
            let present: Vec<_> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            write_head(out, 5, present.len() as u64);
            for (key, item) in present {
                write_head(out, 3, key.len() as u64);
                out.extend_from_slice(key.as_bytes());
                write(out, item, matches!(key.as_str(), "Timestamp" | "Timestamps"));
            }
        }
    }
}

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_what_the_rust_sdk_sends() {
        // {"Namespace": "AWS/Lambda", "StartTime": 1(1700000000.5), "Period": 60,
        //  "Statistics": ["Sum"] (indefinite), "Dimensions": [] , "Neg": -2, "Half": 1.5 (f16)}
        let mut body = vec![0xa7];
        body.extend_from_slice(b"\x69Namespace\x6aAWS/Lambda");
        body.extend_from_slice(b"\x69StartTime\xc1\xfb");
        body.extend_from_slice(&1_700_000_000.5f64.to_be_bytes());
        body.extend_from_slice(b"\x66Period\x18\x3c");
        body.extend_from_slice(b"\x6aStatistics\x9f\x63Sum\xff");
        body.extend_from_slice(b"\x6aDimensions\x80");
        body.extend_from_slice(b"\x63Neg\x21");
        body.extend_from_slice(b"\x64Half\xf9\x3e\x00");
        let value = decode(&body).expect("decodes");
        assert_eq!(
            value,
            json!({"Namespace": "AWS/Lambda", "StartTime": 1_700_000_000.5, "Period": 60, "Statistics": ["Sum"],
                   "Dimensions": [], "Neg": -2, "Half": 1.5})
        );
    }

    #[test]
    fn indefinite_maps_and_strings_decode() {
        // {_ (_ "Na" "me"): "x", "n": null, "y": true}: the null member is absent.
        let body = b"\xbf\x7f\x62Na\x62me\xff\x61x\x61n\xf6\x61y\xf5\xff";
        assert_eq!(decode(body), Ok(json!({"Name": "x", "y": true})));
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        for body in [
            &b"\xa1"[..],
            b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x7b\x00\x00\x00\x00\xff\xff\xff\xff",
            b"\xa1\x01\x02",
            b"\x63ab",
            b"\xa0\x00",
            b"\x1c",
            b"\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00",
        ] {
            assert!(decode(body).is_err(), "{body:x?}");
        }
        let deep = vec![0x81u8; 10_000];
        assert!(decode(&deep).is_err());
    }

    #[test]
    fn replies_round_trip_with_timestamps_tagged() {
        let reply = json!({"Label": "Invocations", "Datapoints": [{"Timestamp": 1_700_000_040, "Sum": 3, "Unit": "Count"}],
                           "MetricDataResults": [{"Timestamps": [60, 120], "Values": [1.5, 2]}]});
        let bytes = encode(&reply);
        assert!(bytes.windows(2).any(|w| w == [0xc1, 0xfb]), "tag 1 before a double");
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back["Datapoints"][0]["Sum"], json!(3.0));
        assert_eq!(back["Datapoints"][0]["Timestamp"], json!(1_700_000_040.0));
        assert_eq!(back["MetricDataResults"][0]["Timestamps"], json!([60.0, 120.0]));
        assert_eq!(back["Label"], "Invocations");
    }
}
