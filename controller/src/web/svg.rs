//! Charts as inline SVG, drawn on the server: pure functions from numbers to markup, no
//! scripts. Every label is escaped here (the templates insert the result unescaped).

use std::fmt::Write as _;

const WIDTH: f64 = 560.0;
const LABEL: f64 = 150.0;
const VALUE: f64 = 70.0;
const ROW: f64 = 22.0;
const BAR: f64 = 14.0;
/// The visible title's band at the top of every chart.
const HEAD: f64 = 20.0;

/// Colours of successive series (and of stack segments), readable on white.
pub const PALETTE: [&str; 8] = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096", "#c53030", "#b7791f"];

/// A value's text: integers without decimals, others with one.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Escapes text for SVG (XML) content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn open(title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12"><title>{}</title>"#,
        escape(title)
    )
}

/// [`open`] with the title also drawn, in bold, above the chart.
fn open_titled(title: &str, height: f64) -> String {
    format!(r#"{}<text x="0" y="14" font-weight="bold">{}</text>"#, open(title, height), escape(title))
}

fn legend(s: &mut String, series: &[&str], y: f64) {
    let mut x = LABEL;
    for (i, name) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            y - 9.0,
            x + 14.0,
            y,
            escape(name)
        );
        x += 24.0 + 7.0 * name.chars().count() as f64;
    }
}

/// Horizontal bars, one group per row and one bar per series, all on one scale; `unit` follows
/// each value. An empty chart says so rather than drawing nothing.
pub fn bars(title: &str, series: &[&str], rows: &[(String, Vec<f64>)], unit: &str) -> String {
    if rows.is_empty() {
        return empty(title);
    }
    let per_row = series.len().max(1) as f64;
    let group = BAR * per_row + (ROW - BAR);
    let top = HEAD + if series.len() > 1 { 22.0 } else { 4.0 };
    let height = top + group * rows.len() as f64 + 4.0;
    let max = rows.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0_f64, f64::max);
    let span = WIDTH - LABEL - VALUE;
    let mut s = open_titled(title, height);
    if series.len() > 1 {
        legend(&mut s, series, HEAD + 14.0);
    }
    for (r, (label, values)) in rows.iter().enumerate() {
        let y0 = top + group * r as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL - 6.0,
            y0 + BAR * per_row / 2.0 + 4.0,
            escape(label)
        );
        for (i, v) in values.iter().enumerate() {
            let w = if max > 0.0 { (v.max(0.0) / max * span).max(if *v > 0.0 { 1.0 } else { 0.0 }) } else { 0.0 };
            let y = y0 + BAR * i as f64;
            let colour = PALETTE[i % PALETTE.len()];
            let _ = write!(
                s,
                r#"<rect x="{LABEL}" y="{y}" width="{w:.1}" height="{}" fill="{colour}"><title>{}: {}{}</title></rect><text x="{:.1}" y="{}">{}{}</text>"#,
                BAR - 2.0,
                escape(series.get(i).copied().unwrap_or("")),
                number(*v),
                escape(unit),
                LABEL + w + 4.0,
                y + BAR - 4.0,
                number(*v),
                escape(unit)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One stacked bar per row, segments in `series` order, each row scaled to its own total
/// (`totals`, e.g. a wave's size): a bar that is not full shows what is still to come.
pub fn stacked(title: &str, series: &[&str], rows: &[(String, Vec<f64>)], totals: &[f64]) -> String {
    if rows.is_empty() {
        return empty(title);
    }
    let top = HEAD + 22.0;
    let height = top + ROW * rows.len() as f64 + 4.0;
    let span = WIDTH - LABEL - VALUE;
    let mut s = open_titled(title, height);
    legend(&mut s, series, HEAD + 14.0);
    for (r, (label, values)) in rows.iter().enumerate() {
        let y = top + ROW * r as f64;
        let total = totals.get(r).copied().unwrap_or(0.0).max(values.iter().sum());
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LABEL}" y="{y}" width="{span}" height="{BAR}" fill="#edf2f7"/>"##,
            LABEL - 6.0,
            y + BAR - 3.0,
            escape(label)
        );
        let mut x = LABEL;
        for (i, v) in values.iter().enumerate() {
            if *v <= 0.0 || total <= 0.0 {
                continue;
            }
            let w = v / total * span;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="{BAR}" fill="{}"><title>{}: {}</title></rect>"#,
                PALETTE[i % PALETTE.len()],
                escape(series.get(i).copied().unwrap_or("")),
                number(*v)
            );
            x += w;
        }
        let done: f64 = values.iter().sum();
        let _ = write!(
            s,
            r#"<text x="{}" y="{}">{} / {}</text>"#,
            LABEL + span + 4.0,
            y + BAR - 3.0,
            number(done),
            number(total)
        );
    }
    s.push_str("</svg>");
    s
}

fn empty(title: &str) -> String {
    format!(
        r##"{}<text x="8" y="18" fill="#718096">{}: nothing recorded yet</text></svg>"##,
        open(title, 28.0),
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(svg: &str) -> Vec<f64> {
        svg.split("<rect ")
            .skip(1)
            .filter(|r| r.contains("<title>"))
            .map(|r| {
                let w = r.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn bars_are_proportional_to_their_values_on_one_scale() {
        let rows = vec![("two_person".to_string(), vec![10.0, 40.0]), ("single".to_string(), vec![5.0, 20.0])];
        let svg = bars("Approval time", &["median", "p95"], &rows, " s");
        let w = widths(&svg);
        assert_eq!(w.len(), 4);
        assert_eq!(w[1], WIDTH - LABEL - VALUE, "the largest value spans the chart");
        assert!((w[0] - w[1] / 4.0).abs() < 0.2 && (w[2] - w[1] / 8.0).abs() < 0.2, "{w:?}");
        assert!(svg.contains(">40 s</text>") && svg.contains(">median</text>") && svg.starts_with("<svg"));
        assert!(svg.contains(r#"font-weight="bold">Approval time</text>"#), "the title is drawn: {svg}");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn a_zero_value_draws_no_bar_and_an_empty_chart_says_so() {
        let svg = bars("Volume", &["proposals"], &[("a".into(), vec![0.0])], "");
        assert_eq!(widths(&svg), vec![0.0]);
        let svg = bars("Volume by tier", &["proposals"], &[], "");
        assert!(svg.contains("Volume by tier: nothing recorded yet"), "{svg}");
        assert!(stacked("Waves", &["x"], &[], &[]).contains("nothing recorded yet"));
    }

    #[test]
    fn stacked_segments_are_shares_of_the_rows_total() {
        let rows = vec![("wave 0".to_string(), vec![3.0, 1.0]), ("wave 1".to_string(), vec![0.0, 0.0])];
        let svg = stacked("Progress", &["confirmed", "failed"], &rows, &[8.0, 10.0]);
        let span = WIDTH - LABEL - VALUE;
        let w = widths(&svg);
        assert_eq!(w.len(), 2, "empty segments are not drawn: {svg}");
        assert!((w[0] - span * 3.0 / 8.0).abs() < 0.1 && (w[1] - span / 8.0).abs() < 0.1, "{w:?}");
        assert!(svg.contains(">4 / 8</text>") && svg.contains(">0 / 10</text>"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars("<t>", &["s&p"], &[("<script>alert(1)</script>".into(), vec![1.0])], "\"");
        assert!(!svg.contains("<script>") && !svg.contains("<t>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("s&amp;p") && svg.contains("&quot;"));
    }
}
