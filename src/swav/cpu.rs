//! CPU references for the SwAV objective, in f64, written as the official code reads.

/// The official loss from scores and codes, pair by pair:
/// mean_i [ sum_{v != c_i} -mean_b sum_k q_i log_softmax(scores_v / T) ] / (n_crops - 1).
pub fn swapped_loss(
    scores: &[f64],
    codes: &[Vec<f64>],
    batch: usize,
    n_crops: usize,
    k: usize,
    assign: &[usize],
    temperature: f64,
) -> f64 {
    let mut loss = 0.0;
    for (q, &c) in codes.iter().zip(assign) {
        let mut sub = 0.0;
        for v in (0..n_crops).filter(|&v| v != c) {
            let x = &scores[v * batch * k..(v + 1) * batch * k];
            let ce = crate::ops::loss::cpu::cross_entropy_forward(x, q, k, 1.0 / temperature);
            sub += ce.iter().sum::<f64>() / batch as f64;
        }
        loss += sub / (n_crops - 1) as f64;
    }
    loss / assign.len() as f64
}
