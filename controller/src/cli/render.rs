//! Output formatting shared by the commands: times, durations, counts, tables and the generic
//! rendering of JSON the client has no mirror type for. Everything returns a `String` (tests
//! compare it); commands print.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Now, unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `2025-03-04 12:30 UTC` for unix milliseconds.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2d 4h`, `3h 20m`, `5m 12s`, `800ms`: the two largest units of a duration.
pub fn duration(ms: i64) -> String {
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = s;
    for (size, name) in units {
        if rest >= size || !parts.is_empty() {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    // The first unit is never zero; a zero second one says nothing ("1h 0m" is "1h").
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.join(" ")
}

/// `in 3h 20m` or `3h 20m ago`, relative to `now`.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    if at_ms >= now_ms {
        format!("in {}", duration(at_ms - now_ms))
    } else {
        format!("{} ago", duration(now_ms - at_ms))
    }
}

/// `1,240`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `5.2%` for a share 0 to 1 (two decimals below 1%).
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p > 0.0 && p < 1.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `gw-m4 40, gw-m7 12`: counts, largest first, then by name.
pub fn counts(map: &BTreeMap<String, u32>) -> String {
    let mut v: Vec<(&String, &u32)> = map.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(|(k, n)| format!("{k} {}", thousands(u64::from(**n)))).collect::<Vec<_>>().join(", ")
}

/// The first 16 hex digits and an ellipsis, for digests in running text.
pub fn short(hex: &str) -> String {
    if hex.len() > 16 {
        format!("{}…", &hex[..16])
    } else {
        hex.to_string()
    }
}

/// A JSON value on one line: strings without quotes, everything else as compact JSON.
pub fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces, with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Renders JSON the client has no mirror for as an indented outline: `key: value` lines, nested
/// objects indented, fields ending in `_ms` shown as durations and `*rate*` / `*share*` fields
/// between 0 and 1 as percentages.
pub fn outline(v: &Value) -> String {
    let mut out = String::new();
    outline_into(&mut out, v, 0);
    out
}

fn outline_into(out: &mut String, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::Object(m) if !m.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", label(k));
                        outline_into(out, val, depth + 1);
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                        let _ = writeln!(out, "{pad}{}:", label(k));
                        for item in a {
                            outline_into(out, item, depth + 1);
                            if item.is_object() {
                                out.push('\n');
                            }
                        }
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{}: {}", label(k), scalar(k, val));
                    }
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                outline_into(out, item, depth);
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", inline(other));
        }
    }
}

/// `median_ms` as `median`, `time_to_decision` as `time to decision`.
fn label(key: &str) -> String {
    key.strip_suffix("_ms").unwrap_or(key).replace('_', " ")
}

/// One value, shown by what its key says it is.
pub fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if key.ends_with("_ms") => n.as_f64().map_or_else(|| n.to_string(), |f| duration(f as i64)),
        Value::Number(n) if (key.contains("rate") || key.contains("share")) && n.as_f64().is_some_and(|f| f <= 1.0) => {
            n.as_f64().map_or_else(|| n.to_string(), percent)
        }
        Value::Null => "-".into(),
        Value::Array(a) => a.iter().map(inline).collect::<Vec<_>>().join(", "),
        other => inline(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unix_milliseconds_show_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn durations_show_their_two_largest_units() {
        assert_eq!(duration(800), "800ms");
        assert_eq!(duration(61_000), "1m 1s");
        assert_eq!(duration(3 * 3_600_000 + 20 * 60_000 + 5_000), "3h 20m");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2d 4h");
        assert_eq!(duration(86_400_000), "1d");
        assert_eq!(relative(10_000, 4_000), "in 6s");
        assert_eq!(relative(4_000, 10_000), "6s ago");
    }

    #[test]
    fn counts_are_largest_first_with_thousands_separators() {
        let m: BTreeMap<String, u32> = [("a".to_string(), 2), ("b".to_string(), 1240)].into_iter().collect();
        assert_eq!(counts(&m), "b 1,240, a 2");
        assert_eq!(counts(&BTreeMap::new()), "-");
        assert_eq!(percent(0.052), "5.2%");
        assert_eq!(percent(0.0012), "0.12%");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["id", "model"], &[vec!["gw-0001".into(), "gw-m4".into()], vec!["x".into(), "y".into()]]);
        assert_eq!(t, "id       model\ngw-0001  gw-m4\nx        y\n");
    }

    #[test]
    fn outlines_humanise_durations_and_rates() {
        let v =
            json!({"time_to_decision": {"median_ms": 5_400_000, "p95_ms": 90_000}, "approve_rate": 0.75, "volume": 3});
        assert_eq!(outline(&v), "approve rate: 75.0%\ntime to decision:\n  median: 1h 30m\n  p95: 1m 30s\nvolume: 3\n");
    }
}
