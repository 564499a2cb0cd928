//! CPU references for pooling, in f64.
use super::PoolShape;

/// (Y, arg-max index within each input plane; first maximum in scan order, as PyTorch).
pub fn max_pool_forward(x: &[f64], s: PoolShape) -> (Vec<f64>, Vec<usize>) {
    let (oh, ow) = s.out_hw();
    let mut y = vec![0.0; s.output_len()];
    let mut arg = vec![0; s.output_len()];
    for p in 0..s.planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = f64::NEG_INFINITY;
                let mut best_at = usize::MAX;
                for r in 0..s.kh {
                    for q in 0..s.kw {
                        let iy = (oy * s.stride.0 + r) as isize - s.pad.0 as isize;
                        let ix = (ox * s.stride.1 + q) as isize - s.pad.1 as isize;
                        if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                            continue;
                        }
                        let at = iy as usize * s.w + ix as usize;
                        let v = x[p * s.h * s.w + at];
                        if best_at == usize::MAX || v > best {
                            best = v;
                            best_at = at;
                        }
                    }
                }
                let o = (p * oh + oy) * ow + ox;
                y[o] = best;
                arg[o] = best_at;
            }
        }
    }
    (y, arg)
}

pub fn max_pool_backward(dy: &[f64], arg: &[usize], s: PoolShape) -> Vec<f64> {
    let (oh, ow) = s.out_hw();
    let mut dx = vec![0.0; s.planes * s.h * s.w];
    for p in 0..s.planes {
        for o in 0..oh * ow {
            dx[p * s.h * s.w + arg[p * oh * ow + o]] += dy[p * oh * ow + o];
        }
    }
    dx
}

pub fn global_avg_pool_forward(x: &[f64], planes: usize, hw: usize) -> Vec<f64> {
    (0..planes).map(|p| x[p * hw..(p + 1) * hw].iter().sum::<f64>() / hw as f64).collect()
}
