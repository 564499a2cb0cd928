//! CPU reference for conv2d (NCHW, weights [Cout, Cin, KH, KW]), in f64: direct loops.
use super::Conv2dShape;

/// Index of the input pixel that output (oy, ox) sees through kernel tap (r, s), if in range.
fn tap(s: &Conv2dShape, oy: usize, ox: usize, r: usize, c: usize) -> Option<(usize, usize)> {
    let iy = (oy * s.stride.0 + r) as isize - s.pad.0 as isize;
    let ix = (ox * s.stride.1 + c) as isize - s.pad.1 as isize;
    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
        None
    } else {
        Some((iy as usize, ix as usize))
    }
}

pub fn forward(x: &[f64], w: &[f64], s: Conv2dShape) -> Vec<f64> {
    let (oh, ow) = s.out_hw();
    let mut y = vec![0.0; s.output_len()];
    for b in 0..s.batch {
        for co in 0..s.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..s.cin {
                        for r in 0..s.kh {
                            for q in 0..s.kw {
                                if let Some((iy, ix)) = tap(&s, oy, ox, r, q) {
                                    acc += w[((co * s.cin + ci) * s.kh + r) * s.kw + q]
                                        * x[((b * s.cin + ci) * s.h + iy) * s.w + ix];
                                }
                            }
                        }
                    }
                    y[((b * s.cout + co) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// Returns (dX, dW): the same loops as forward, scattering dY into both.
pub fn backward(x: &[f64], w: &[f64], dy: &[f64], s: Conv2dShape) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = s.out_hw();
    let mut dx = vec![0.0; s.input_len()];
    let mut dw = vec![0.0; s.weight_len()];
    for b in 0..s.batch {
        for co in 0..s.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = dy[((b * s.cout + co) * oh + oy) * ow + ox];
                    for ci in 0..s.cin {
                        for r in 0..s.kh {
                            for q in 0..s.kw {
                                if let Some((iy, ix)) = tap(&s, oy, ox, r, q) {
                                    let wi = ((co * s.cin + ci) * s.kh + r) * s.kw + q;
                                    let xi = ((b * s.cin + ci) * s.h + iy) * s.w + ix;
                                    dx[xi] += g * w[wi];
                                    dw[wi] += g * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}
