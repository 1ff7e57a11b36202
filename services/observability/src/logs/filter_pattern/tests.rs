use super::*;

fn check(pattern: &str, cases: &[(&str, bool)]) {
    let p = FilterPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
    for (message, expected) in cases {
        assert_eq!(p.matches(message), *expected, "pattern {pattern:?} on {message:?}");
    }
}

#[test]
fn empty_and_blank_match_everything() {
    for p in ["", "   ", "\t\n"] {
        let parsed = FilterPattern::parse(p).expect("parse");
        assert!(parsed.is_all());
        assert!(parsed.matches(""));
        assert!(parsed.matches("anything"));
    }
}

#[test]
fn terms_must_all_appear_case_sensitively() {
    check(
        "ERROR timeout",
        &[
            ("ERROR: timeout after 3s", true),
            ("timeout ERROR", true),
            ("[ERROR] connection timeout\n", true),
            ("ERROR only", false),
            ("error: timeout", false),
            ("", false),
        ],
    );
}

#[test]
fn quoted_phrases_keep_spaces_and_escapes() {
    check("\"user 42\" START", &[("START user 42 logged in", true), ("START user  42", false), ("user 42", false)]);
    check(r#""say \"hi\"""#, &[(r#"they say "hi" to all"#, true), ("say hi", false)]);
    check(r#""back\\slash""#, &[(r"a back\slash b", true), ("a backslash", false)]);
    check(r#""a:b" "c-d""#, &[("x a:b y c-d", true), ("a:b", false)]);
}

#[test]
fn question_mark_terms_match_any_of() {
    check("?ERROR ?WARN", &[("WARN low disk", true), ("ERROR boom", true), ("INFO fine", false)]);
    check(
        "REPORT ?Init ?Timeout",
        &[
            ("REPORT RequestId Init Duration", true),
            ("REPORT Timeout", true),
            ("REPORT RequestId", false),
            ("Init", false),
        ],
    );
    check("?\"cold start\"", &[("a cold start", true), ("cold", false)]);
}

#[test]
fn minus_terms_exclude() {
    check("ERROR -healthcheck", &[("ERROR in request", true), ("ERROR in healthcheck", false), ("healthcheck", false)]);
    check("-DEBUG", &[("INFO x", true), ("DEBUG x", false), ("", true)]);
    check("-\"two words\" x", &[("x two words", false), ("x two", true)]);
}

#[test]
fn unstructured_patterns_that_do_not_parse() {
    for p in ["\"unterminated", "?", "-", "ERROR ?", "a\"b", "[ip, user]", "{ $.a = 1", "a } b", "%%"] {
        assert_eq!(FilterPattern::parse(p).err(), Some(InvalidPattern), "{p:?} should be invalid");
    }
}

#[test]
fn json_string_equality_and_wildcards() {
    check(
        r#"{ $.level = "ERROR" }"#,
        &[
            (r#"{"level":"ERROR","msg":"x"}"#, true),
            ("{\"level\": \"ERROR\"}\n", true),
            (r#"{"level":"error"}"#, false),
            (r#"{"level":"ERRORS"}"#, false),
            (r#"{"other":"ERROR"}"#, false),
            ("level = ERROR", false),
            ("ERROR", false),
        ],
    );
    check(
        r#"{ $.path = "/api/*/items*" }"#,
        &[
            (r#"{"path":"/api/v1/items"}"#, true),
            (r#"{"path":"/api/v2/items/7"}"#, true),
            (r#"{"path":"/api/items"}"#, false),
            (r#"{"path":"/x/api/v1/items"}"#, false),
        ],
    );
    check(
        "{$.eventType=UpdateTrail}",
        &[(r#"{"eventType":"UpdateTrail"}"#, true), (r#"{"eventType":"Update"}"#, false)],
    );
    check(r#"{ $.a = "*" }"#, &[(r#"{"a":""}"#, true), (r#"{"a":"z"}"#, true), (r#"{"a":1}"#, false)]);
}

#[test]
fn json_inequality_needs_the_field() {
    check(
        r#"{ $.level != "INFO" }"#,
        &[(r#"{"level":"WARN"}"#, true), (r#"{"level":"INFO"}"#, false), (r#"{"msg":"no level"}"#, false)],
    );
}

#[test]
fn json_numbers_compare_numerically() {
    let doc = |n: &str| format!(r#"{{"ms": {n}, "s": "7"}}"#);
    for (pattern, expect) in [
        ("{ $.ms > 5 }", [false, false, true, true]),
        ("{ $.ms >= 5 }", [false, true, true, true]),
        ("{ $.ms < 5 }", [true, false, false, false]),
        ("{ $.ms <= 5 }", [true, true, false, false]),
        ("{ $.ms = 5 }", [false, true, false, false]),
        ("{ $.ms != 5 }", [true, false, true, true]),
        ("{ $.ms = 5.0 }", [false, true, false, false]),
    ] {
        let cases: Vec<(String, bool)> =
            ["4.5", "5", "6", "1e3"].iter().zip(expect).map(|(n, e)| (doc(n), e)).collect();
        let cases: Vec<(&str, bool)> = cases.iter().map(|(m, e)| (m.as_str(), *e)).collect();
        check(pattern, &cases);
    }
    // A numeric string is not a number.
    check("{ $.s > 1 }", &[(r#"{"s":"7"}"#, false)]);
    check("{ $.t < -1.5 }", &[(r#"{"t":-2}"#, true), (r#"{"t":-1}"#, false)]);
}

#[test]
fn json_and_or_and_parentheses() {
    let p = r#"{ ($.level = "ERROR" || $.level = "WARN") && $.ms > 100 }"#;
    check(
        p,
        &[
            (r#"{"level":"ERROR","ms":200}"#, true),
            (r#"{"level":"WARN","ms":101}"#, true),
            (r#"{"level":"WARN","ms":100}"#, false),
            (r#"{"level":"INFO","ms":500}"#, false),
        ],
    );
    // && binds tighter than ||.
    let p = r#"{ $.a = 1 || $.b = 1 && $.c = 1 }"#;
    check(p, &[(r#"{"a":1}"#, true), (r#"{"b":1}"#, false), (r#"{"b":1,"c":1}"#, true)]);
}

#[test]
fn json_nested_keys_and_indexes() {
    check(
        r#"{ $.user.id = "u-1" }"#,
        &[(r#"{"user":{"id":"u-1"}}"#, true), (r#"{"user":{"id":"u-2"}}"#, false), (r#"{"user":"u-1"}"#, false)],
    );
    check(
        r#"{ $.items[1].sku = "B" }"#,
        &[(r#"{"items":[{"sku":"A"},{"sku":"B"}]}"#, true), (r#"{"items":[{"sku":"B"}]}"#, false)],
    );
    check(r#"{ $.a.b.c > 0 }"#, &[(r#"{"a":{"b":{"c":1}}}"#, true), (r#"{"a":{"b":{}}}"#, false)]);
}

#[test]
fn json_keywords() {
    check("{ $.ok IS TRUE }", &[(r#"{"ok":true}"#, true), (r#"{"ok":false}"#, false), (r#"{"ok":"true"}"#, false)]);
    check("{ $.ok is false }", &[(r#"{"ok":false}"#, true), (r#"{"ok":true}"#, false)]);
    check("{ $.x IS NULL }", &[(r#"{"x":null}"#, true), (r#"{"x":0}"#, false), ("{}", false)]);
    check("{ $.x NOT EXISTS }", &[("{}", true), (r#"{"x":null}"#, false), ("not json", false)]);
    check("{ $.x EXISTS }", &[("{}", false), (r#"{"x":null}"#, true)]);
    check("{ $.ok = true }", &[(r#"{"ok":true}"#, true), (r#"{"ok":false}"#, false)]);
}

#[test]
fn json_patterns_that_do_not_parse() {
    for p in [
        "{}",
        "{ }",
        "{ $.a }",
        "{ $.a = }",
        "{ $.a = 1 && }",
        "{ ($.a = 1 }",
        "{ $.a = 1 ) }",
        r#"{ $.a > "x" }"#,
        "{ $.a < true }",
        "{ $.a == 1 }",
        "{ a = 1 }",
        "{ $..a = 1 }",
        "{ $.a[x] = 1 }",
        "{ $.a[1 = 1 }",
        "{ $.a IS MAYBE }",
        "{ $.a NOT 1 }",
        "{ $.a = 1 $.b = 2 }",
        "{ $.a = 1 & $.b = 2 }",
        r#"{ $.a = "open }"#,
    ] {
        assert_eq!(FilterPattern::parse(p).err(), Some(InvalidPattern), "{p:?} should be invalid");
    }
}

#[test]
fn json_pattern_ignores_non_json_and_non_object_messages() {
    check(r#"{ $.a = "b" }"#, &[("START RequestId: 1", false), ("[1,2]", false), ("", false), ("{\"a\":\"b\"", false)]);
    check("{ $[0] = 1 }", &[("[1,2]", true), ("[2]", false)]);
}

#[test]
fn regex_patterns() {
    check("%ERROR [0-9]+%", &[("x ERROR 42 y", true), ("ERROR x", false)]);
    assert_eq!(FilterPattern::parse("%(unclosed%").err(), Some(InvalidPattern));
}

#[test]
fn wildcards() {
    for (pattern, text, expected) in [
        ("abc", "abc", true),
        ("abc", "abcd", false),
        ("a*", "a", true),
        ("*c", "abc", true),
        ("*c", "abd", false),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "acb", false),
        ("a*ab", "ab", false),
        ("a*b*b", "abb", true),
        ("**", "", true),
        ("*", "anything", true),
    ] {
        assert_eq!(wildcard_match(pattern, text), expected, "{pattern:?} on {text:?}");
    }
}
