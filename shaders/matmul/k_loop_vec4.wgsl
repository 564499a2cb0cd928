// The K loop of a register tile over dense_vec4.wgsl, 4 steps of K per iteration: a vec4 of
// A per row and a vec4 of B per 4 columns. Spliced into a core's main.
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    let k4 = P.k / 4u;
    let n4 = P.n / 4u;
{{SETUP}}
    for (var k = k_begin / 4u; k < k_end / 4u; k++) {
{{BODY}}
    }
{{STORE}}
