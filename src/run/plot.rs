//! The run's loss.svg, drawn by hand (no plotting dependency): a self-contained SVG.
use super::monitor::EpochPoint;

/// A self-contained SVG: the loss per iteration (left axis) and k-NN top-1 (right axis) on
/// top; below, per epoch, the mean entropy of Sinkhorn's codes (0 to ln K, left) and the
/// prototypes in use (0 to K, right).
pub fn plot_svg(
    losses: &[(usize, f32)],
    knn: &[(usize, f64)],
    k: usize,
    epochs: &[EpochPoint],
    prototypes: usize,
) -> String {
    let (w, h, pad, h2) = (800.0, 320.0, 50.0, 220.0);
    let total_h = if epochs.is_empty() { h } else { h + h2 };
    let max_it = losses
        .iter()
        .map(|p| p.0)
        .chain(knn.iter().map(|p| p.0))
        .chain(epochs.iter().map(|p| p.iteration))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let finite: Vec<f32> = losses.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo as f64, hi as f64) } else { (0.0, 1.0) };
    let frame = Frame { w, pad, max_it };
    let x = |it: usize| frame.x(it);
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let points: Vec<String> =
        losses.iter().filter(|p| p.1.is_finite()).map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1 as f64))).collect();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total_h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    s += &format!(r#"<text x="{pad}" y="20">SwAV training loss (blue) and k-NN top-1, k={k} (orange)</text>"#);
    s += &format!(
        r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>"#,
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    s += &format!(r#"<text x="5" y="{:.0}">{hi:.3}</text><text x="5" y="{:.0}">{lo:.3}</text>"#, pad + 4.0, h - pad);
    s += &format!(
        r#"<text x="{pad}" y="{:.0}">0</text><text x="{:.0}" y="{:.0}">{} iterations</text>"#,
        h - pad + 16.0,
        w - pad - 90.0,
        h - pad + 16.0,
        max_it as usize
    );
    s += &format!(r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##, points.join(" "));
    if !knn.is_empty() {
        s += &knn_series(knn, &frame, h);
    }
    if !epochs.is_empty() {
        s += &monitor_panel(epochs, prototypes, &frame, h, h2);
    }
    s + "</svg>\n"
}

/// The x axis shared by both panels.
struct Frame {
    w: f64,
    pad: f64,
    max_it: f64,
}

impl Frame {
    fn x(&self, it: usize) -> f64 {
        self.pad + (self.w - 2.0 * self.pad) * it as f64 / self.max_it
    }
}

/// The k-NN accuracies on the loss panel's right axis (0 to 100 %).
fn knn_series(knn: &[(usize, f64)], frame: &Frame, h: f64) -> String {
    let (w, pad) = (frame.w, frame.pad);
    let x = |it: usize| frame.x(it);
    let yk = |v: f64| h - pad - (h - 2.0 * pad) * v / 100.0;
    let mut s = String::new();
    s += &format!(
        r#"<line x1="{}" y1="{pad}" x2="{}" y2="{}" stroke="black"/><text x="{}" y="{:.0}">100%</text><text x="{}" y="{:.0}">0%</text>"#,
        w - pad,
        w - pad,
        h - pad,
        w - pad + 4.0,
        pad + 4.0,
        w - pad + 4.0,
        h - pad
    );
    for (it, v) in knn {
        s += &format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#ff7f0e"/><text x="{:.1}" y="{:.1}" fill="#ff7f0e">{v:.1}%</text>"##,
            x(*it),
            yk(*v),
            x(*it) + 6.0,
            yk(*v) - 6.0
        );
    }
    s
}

/// The monitor panel, below the loss: both series on their own full-range scales, so a
/// collapse (entropy at ln K, or few prototypes in use) reads at a glance.
fn monitor_panel(epochs: &[EpochPoint], prototypes: usize, frame: &Frame, h: f64, h2: f64) -> String {
    let (w, pad, max_it) = (frame.w, frame.pad, frame.max_it);
    let x = |it: usize| frame.x(it);
    let mut s = String::new();
    let (top, bottom) = (h + 30.0, h + h2 - 40.0);
    let ln_k = (prototypes.max(2) as f64).ln();
    let ye = |v: f64| bottom - (bottom - top) * (v / ln_k).clamp(0.0, 1.0);
    let yp = |v: usize| bottom - (bottom - top) * (v as f64 / prototypes.max(1) as f64).min(1.0);
    s += &format!(
        r##"<text x="{pad}" y="{:.0}"><tspan fill="#2ca02c">code entropy (nats, left)</tspan> and <tspan fill="#9467bd">prototypes in use (right)</tspan> per epoch</text>"##,
        h + 15.0
    );
    s += &format!(
        r#"<line x1="{pad}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/><line x1="{pad}" y1="{top}" x2="{pad}" y2="{bottom}" stroke="black"/><line x1="{}" y1="{top}" x2="{}" y2="{bottom}" stroke="black"/>"#,
        w - pad,
        w - pad,
        w - pad
    );
    s += &format!(
        r##"<text x="5" y="{:.0}" fill="#2ca02c">{ln_k:.2}</text><text x="5" y="{:.0}" fill="#2ca02c">0</text><text x="{:.0}" y="{:.0}" fill="#9467bd">{prototypes}</text><text x="{:.0}" y="{:.0}" fill="#9467bd">0</text>"##,
        top + 4.0,
        bottom,
        w - pad + 4.0,
        top + 4.0,
        w - pad + 4.0,
        bottom
    );
    s += &format!(
        r#"<text x="{pad}" y="{:.0}">0</text><text x="{:.0}" y="{:.0}">{} iterations</text>"#,
        bottom + 16.0,
        w - pad - 90.0,
        bottom + 16.0,
        max_it as usize
    );
    let finite = epochs.iter().filter(|p| p.code_entropy.is_finite());
    let entropy: Vec<String> = finite.map(|p| format!("{:.1},{:.1}", x(p.iteration), ye(p.code_entropy))).collect();
    let in_use: Vec<String> =
        epochs.iter().map(|p| format!("{:.1},{:.1}", x(p.iteration), yp(p.prototypes_in_use))).collect();
    for (pts, colour) in [(entropy, "#2ca02c"), (in_use, "#9467bd")] {
        s += &format!(r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#, pts.join(" "));
        for p in &pts {
            if let Some((cx, cy)) = p.split_once(',') {
                s += &format!(r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#);
            }
        }
    }
    s
}
