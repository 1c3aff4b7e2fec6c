//! Bar charts as SVG: one drawing for the HTML page (inline) and the PDF
//! (Typst embeds SVG images), so both show the same picture.
//!
//! Hand-written because a chart here is a few rectangles and a line; a
//! plotting crate would bring a rasteriser and fonts for nothing.

use std::fmt::Write as _;

use crate::Chart;
use crate::markdown::trim_float;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// Escapes text for XML content and attribute values.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The chart as a standalone SVG document.
pub(crate) fn bar_chart(chart: &Chart) -> String {
    let max_bar = chart.bars.iter().map(|b| b.value).filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    let top = max_bar.max(chart.threshold.as_ref().map_or(0.0, |t| t.value)).max(f64::MIN_POSITIVE) * 1.15;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h - (v.clamp(0.0, top) / top) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##);
    let _ = write!(s, r##"<text x="{LEFT}" y="16" font-size="13" font-weight="bold" fill="#222">{}</text>"##, xml(&chart.title));
    // Axis and a label at the top of the scale.
    let _ = write!(s, r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#888"/>"##, TOP + plot_h);
    let _ = write!(s, r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#888"/>"##, TOP + plot_h, LEFT + plot_w);
    let _ = write!(s, r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{} {}</text>"##, LEFT - 4.0, TOP + 4.0, trim_float(top / 1.15), xml(&chart.unit));
    let _ = write!(s, r##"<text x="{}" y="{}" text-anchor="end" fill="#555">0</text>"##, LEFT - 4.0, TOP + plot_h);
    let n = chart.bars.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.6).min(48.0);
    for (i, b) in chart.bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let value = if b.value.is_finite() { b.value } else { 0.0 };
        // At least a pixel high: a drill of seconds against an objective of
        // hours is still a bar, and a zero-height rect is invalid to SVG
        // renderers (the PDF's warns "invalid 'height' value").
        let top_y = y(value).min(TOP + plot_h - 1.0);
        let colour = if b.failed { "#c0392b" } else { "#2e86c1" };
        let _ = write!(s, r#"<rect x="{x:.1}" y="{top_y:.1}" width="{bar_w:.1}" height="{:.1}" fill="{colour}"><title>{}: {} {}</title></rect>"#, TOP + plot_h - top_y, xml(&b.label), trim_float(value), xml(&chart.unit));
        let _ = write!(s, r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222">{}</text>"##, x + bar_w / 2.0, top_y - 3.0, trim_float(value));
        let _ = write!(s, r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##, x + bar_w / 2.0, TOP + plot_h + 14.0, xml(&b.label));
    }
    if let Some(t) = &chart.threshold {
        let ty = y(t.value);
        let _ = write!(s, r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#c0392b" stroke-dasharray="6 4"/>"##, LEFT + plot_w);
        let _ = write!(s, r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c0392b">{}</text>"##, LEFT + plot_w, ty - 4.0, xml(&t.label));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bar, Threshold};

    #[test]
    fn chart_text_is_escaped_and_bars_scale_to_the_tallest() {
        let chart = Chart {
            title: "<script>alert(1)</script>".into(),
            unit: "s".into(),
            bars: vec![Bar { label: "a&b".into(), value: 100.0, failed: false }, Bar { label: "c".into(), value: 50.0, failed: true }],
            threshold: Some(Threshold { label: "objectif".into(), value: 80.0 }),
        };
        let svg = bar_chart(&chart);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("a&amp;b"), "{svg}");
        // The failed bar is red and half as tall as the other.
        let heights: Vec<f64> = svg.match_indices("height=\"").skip(2).filter_map(|(i, _)| svg[i + 8..].split('"').next()?.parse().ok()).collect();
        assert_eq!(heights.len(), 2, "{svg}");
        assert!((heights[0] / heights[1] - 2.0).abs() < 0.01, "{heights:?}");
        assert!(svg.contains("#c0392b"));
    }
}
