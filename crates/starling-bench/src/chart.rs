//! SVG charts of a sweep (plotters, SVG backend only: no fonts or image
//! libraries to build, and the charts are text that diffs and renders on
//! any forge).

use std::path::Path;

use plotters::prelude::*;

use crate::report::OpReport;
use crate::sweep::Curve;

const SIZE: (u32, u32) = (900, 520);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values {
        if v > 0.0 {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        (0.1, 1.0)
    } else {
        (lo, hi.max(lo * 1.01))
    }
}

/// Latency percentiles (log scale) of one operation against offered rate,
/// with the p99 bound as a dashed line.
pub fn latency(
    path: &Path,
    title: &str,
    points: &[(f64, &OpReport)],
    bound_ms: f64,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (x_lo, x_hi) = bounds(points.iter().map(|(x, _)| *x));
    let (y_lo, y_hi) = bounds(
        points
            .iter()
            .flat_map(|(_, o)| [o.latency_ms.p50, o.latency_ms.p999, o.latency_ms.max])
            .chain(std::iter::once(bound_ms)),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_lo * 0.9)..(x_hi * 1.05),
            ((y_lo * 0.8)..(y_hi * 1.25)).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("offered rate (requests/s)")
        .y_desc("latency (ms, log scale)")
        .draw()
        .map_err(err)?;
    type Pick = fn(&OpReport) -> f64;
    let series: [(&str, RGBColor, Pick); 4] = [
        ("p50", BLUE, |o| o.latency_ms.p50),
        ("p90", GREEN, |o| o.latency_ms.p90),
        ("p99", RED, |o| o.latency_ms.p99),
        ("p99.9", MAGENTA, |o| o.latency_ms.p999),
    ];
    for (name, color, pick) in series {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|(x, o)| (*x, pick(o).max(y_lo * 0.8)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x_lo * 0.9, bound_ms), (x_hi * 1.05, bound_ms)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!("p99 bound {bound_ms} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Achieved against offered rate for each swept workload, with the ideal
/// diagonal.
pub fn throughput(path: &Path, curves: &[&Curve]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (lo, hi) = bounds(
        curves
            .iter()
            .flat_map(|c| c.steps.iter().flat_map(|s| [s.offered_rps, s.achieved_rps])),
    );
    let (lo, hi) = (lo * 0.8, hi * 1.25);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "achieved against offered rate (log-log)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("offered (requests/s)")
        .y_desc("achieved (requests/s)")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(lo, lo), (hi, hi)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, curve) in curves.iter().enumerate() {
        let color = colors[i % colors.len()];
        let line: Vec<(f64, f64)> = curve
            .steps
            .iter()
            .map(|s| (s.offered_rps, s.achieved_rps.max(lo)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(format!(
                "{:?} (sustains {:.0}/s)",
                curve.workload, curve.highest_sustainable_rps
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
