//! Small line charts drawn server-side as inline SVG: no script, no image files.

use maud::{html, Markup};

/// Drawing size of one chart, in SVG units.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 140.0;
const PAD: f64 = 28.0;

/// A line chart of `points` (one per day, `None` where the day has no value) with `label`
/// as its title and `unit` formatting the top of the scale.
pub fn line(
    label: &str,
    days: &[String],
    points: &[Option<f64>],
    unit: fn(f64) -> String,
) -> Markup {
    let max = points
        .iter()
        .flatten()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let n = points.len().max(2) as f64;
    let x = |i: usize| PAD + (WIDTH - 2.0 * PAD) * i as f64 / (n - 1.0);
    let y = |v: f64| HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * (v / max);
    // Days without a value break the line rather than drawing it to zero.
    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => segments
                .last_mut()
                .expect("never empty")
                .push((x(i), y(*v))),
            None if segments.last().is_some_and(|s| !s.is_empty()) => segments.push(Vec::new()),
            None => {}
        }
    }
    let has_data = points.iter().any(Option::is_some);
    html! {
        figure.chart {
            figcaption { (label) }
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
                width=(WIDTH) height=(HEIGHT) role="img" aria-label=(label) {
                rect x="0" y="0" width=(WIDTH) height=(HEIGHT) fill="#fbfbfd" {}
                line x1=(PAD) y1=(HEIGHT - PAD) x2=(WIDTH - PAD) y2=(HEIGHT - PAD) stroke="#888" {}
                line x1=(PAD) y1=(PAD) x2=(PAD) y2=(HEIGHT - PAD) stroke="#888" {}
                text x="2" y=(PAD - 6.0) font-size="11" fill="#444" { (unit(if has_data { max } else { 0.0 })) }
                text x="2" y=(HEIGHT - PAD + 4.0) font-size="11" fill="#444" { "0" }
                @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                    text x=(PAD) y=(HEIGHT - 8.0) font-size="11" fill="#444" { (first) }
                    text x=(WIDTH - PAD) y=(HEIGHT - 8.0) font-size="11" fill="#444" text-anchor="end" { (last) }
                }
                @for segment in &segments {
                    @if segment.len() > 1 {
                        polyline fill="none" stroke="#2357c6" stroke-width="2"
                            points=(segment.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")) {}
                    }
                    @for (cx, cy) in segment {
                        circle cx=(format!("{cx:.1}")) cy=(format!("{cy:.1}")) r="3" fill="#2357c6" {}
                    }
                }
                @if !has_data {
                    text x=(WIDTH / 2.0) y=(HEIGHT / 2.0) font-size="13" fill="#666" text-anchor="middle" { "no outcomes yet" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(v: f64) -> String {
        format!("{:.0}%", v * 100.0)
    }

    #[test]
    fn a_gap_splits_the_line_and_every_value_gets_a_point() {
        let days: Vec<String> = (1..=5).map(|d| format!("12-0{d}")).collect();
        let svg = line(
            "hand-off rate",
            &days,
            &[Some(0.5), Some(0.25), None, Some(1.0), Some(0.0)],
            percent,
        )
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert!(
            svg.contains(">100%<"),
            "the scale tops at the largest value: {svg}"
        );
        assert!(!svg.contains("no outcomes yet"));
    }

    #[test]
    fn no_data_says_so() {
        let svg = line("time to resolve", &[], &[None, None], percent).into_string();
        assert!(svg.contains("no outcomes yet"), "{svg}");
        assert!(!svg.contains("<polyline"));
    }
}
