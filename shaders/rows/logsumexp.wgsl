// The stable softmax of scale * X over one row (X: the kernel's input), shared by softmax,
// log-softmax and cross-entropy: first the row's maximum, then sum(exp(scale * X - max)).
fn scaled_row_max(lid: u32, base: u32) -> f32 {
    var m = -0x1.fffffep+127f;
    for (var j = lid; j < P.cols; j += WG) {
        m = max(m, P.scale * X[base + j]);
    }
    return wg_max(lid, m);
}

fn scaled_row_sum_exp(lid: u32, base: u32, row_max: f32) -> f32 {
    var s = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        s += exp(P.scale * X[base + j] - row_max);
    }
    return wg_sum(lid, s);
}
