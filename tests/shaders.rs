//! Every WGSL module the library can create (all kernels, variants and specialisations) parses
//! and validates with naga, and fits WebGPU's default limits: at most 16 KiB of workgroup
//! memory, 256 invocations per workgroup and 8 storage buffers per stage. No GPU needed.
use swav_wgpu::ops::all_kernel_sources;

/// What a kernel may need beyond WebGPU's core: only the optional fast paths (subgroups) and
/// the f16 storage kernels (`shader-f16`).
fn kernel_capabilities(source: &str) -> naga::valid::Capabilities {
    let mut caps = naga::valid::Capabilities::empty();
    if source.contains("subgroup_invocation_id") {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    if source.contains("enable f16;") {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    caps
}

#[test]
fn every_kernel_validates_and_fits_webgpu_default_limits() {
    let limits = wgpu::Limits::defaults();
    let sources = all_kernel_sources();
    assert!(sources.len() >= 30, "expected every kernel, got {}", sources.len());
    let mut failures = Vec::new();
    let (mut most_workgroup_bytes, mut most_storage) = (0, 0);
    for k in &sources {
        let module = match naga::front::wgsl::parse_str(&k.source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: parse error: {}", k.name, e.emit_to_string(&k.source)));
                continue;
            }
        };
        // Only the subgroup fast paths (an optional feature) may need more than WebGPU's core.
        let caps = kernel_capabilities(&k.source);
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all())
            .validate(&module);
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{}: validation error: {}", k.name, e.emit_to_string(&k.source)));
                continue;
            }
        };
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        for (ep_index, ep) in module.entry_points.iter().enumerate() {
            let invocations: u32 = ep.workgroup_size.iter().product();
            if invocations > limits.max_compute_invocations_per_workgroup {
                failures.push(format!("{}: {} invocations per workgroup", k.name, invocations));
            }
            let ep_info = info.get_entry_point(ep_index);
            let mut workgroup_bytes = 0u32;
            let mut storage_buffers = 0u32;
            for (handle, var) in module.global_variables.iter() {
                if ep_info[handle].is_empty() {
                    continue; // not used by this entry point
                }
                match var.space {
                    naga::AddressSpace::WorkGroup => workgroup_bytes += layouter[var.ty].size,
                    naga::AddressSpace::Storage { .. } => storage_buffers += 1,
                    _ => {}
                }
            }
            most_workgroup_bytes = most_workgroup_bytes.max(workgroup_bytes);
            most_storage = most_storage.max(storage_buffers);
            if workgroup_bytes > limits.max_compute_workgroup_storage_size {
                failures.push(format!("{}: {workgroup_bytes} bytes of workgroup memory", k.name));
            }
            if storage_buffers > limits.max_storage_buffers_per_shader_stage {
                failures.push(format!("{}: {storage_buffers} storage buffers", k.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} kernel(s) fail:\n{}", failures.len(), failures.join("\n"));
    // The counting itself works: the largest GEMM workgroup tiles (64x64 with K-slices of 32)
    // take (64 + 64) x 32 floats, all of the 16 KiB; batch-norm's backward binds exactly 8
    // storage buffers.
    assert_eq!(most_workgroup_bytes, 16384);
    assert_eq!(most_storage, 8);
    println!("{} kernels validated", sources.len());
}

#[test]
fn no_kernel_uses_float_atomics() {
    for k in all_kernel_sources() {
        assert!(!k.source.contains("atomic<f32>"), "{} uses float atomics, which browsers lack", k.name);
    }
}

/// Metal and DX12 users have no CI here: every kernel also goes through naga's MSL and HLSL
/// writers (what wgpu does on those backends), f16 kernels included.
#[test]
fn every_kernel_translates_to_msl_and_hlsl() {
    let mut failures = Vec::new();
    let sources = all_kernel_sources();
    for k in &sources {
        let module = naga::front::wgsl::parse_str(&k.source).expect("parses (checked above)");
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), kernel_capabilities(&k.source))
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all())
            .validate(&module)
            .expect("validates (checked above)");
        let msl_options = naga::back::msl::Options {
            lang_version: (2, 4), // subgroup (SIMD-group) operations and half need MSL 2.x
            ..Default::default()
        };
        let pipeline = naga::back::msl::PipelineOptions::default();
        if let Err(e) = naga::back::msl::write_string(&module, &info, &msl_options, &pipeline) {
            failures.push(format!("{}: MSL: {e}", k.name));
        }
        let hlsl_options = naga::back::hlsl::Options {
            shader_model: naga::back::hlsl::ShaderModel::V6_2, // 16-bit types need SM 6.2
            ..Default::default()
        };
        let (mut out, hlsl_pipeline) = (String::new(), naga::back::hlsl::PipelineOptions::default());
        let mut writer = naga::back::hlsl::Writer::new(&mut out, &hlsl_options, &hlsl_pipeline);
        if let Err(e) = writer.write(&module, &info, None) {
            failures.push(format!("{}: HLSL: {e}", k.name));
        }
    }
    assert!(failures.is_empty(), "{} kernel(s) fail:\n{}", failures.len(), failures.join("\n"));
    println!("{} kernels translated to MSL and HLSL", sources.len());
}
