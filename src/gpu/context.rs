//! Adapter selection, the device (WebGPU default limits unless asked), the pipeline cache,
//! the buffer pool and readback that never blocks on wasm.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::tune::{TuneMode, Tuner};

/// Kernel variants are chosen per adapter class: software rasterisers (lavapipe, SwiftShader)
/// run workgroup barriers as coroutine switches, so they get barrier-free register-tiled
/// kernels; real GPUs get workgroup-memory tiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterClass {
    Cpu,
    Gpu,
}

/// How to pick the adapter. `from_env` reads `SWAV_WGPU_BACKEND` (or wgpu's `WGPU_BACKEND`),
/// `SWAV_WGPU_ADAPTER` (a case-insensitive substring of the adapter name) and
/// `SWAV_WGPU_FULL_LIMITS=1` (request the adapter's own limits instead of WebGPU's defaults)
/// `SWAV_WGPU_NO_SUBGROUPS=1` (never use the subgroup fast paths),
/// `SWAV_WGPU_NO_F16=1` (do not ask for shader-f16: the adapter as one without it) and
/// `SWAV_WGPU_NO_TIMESTAMPS=1` (time kernels by wall clock, for drivers with broken timestamps).
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: Option<String>,
    pub adapter: Option<String>,
    pub full_limits: bool,
    pub no_subgroups: bool,
    pub no_f16: bool,
    pub no_timestamps: bool,
    /// How plans choose GEMM variants (`tune`); `from_env` reads `SWAV_WGPU_TUNE`, default quick.
    pub tune: TuneMode,
    /// Where tuned choices persist (`tune::default_cache_path` from `from_env`; none: memory).
    pub tune_cache: Option<std::path::PathBuf>,
    /// A data-parallel rank's index on its machine: without `adapter`, it takes the GPU of
    /// that index (modulo their number); machines with no GPU share the default adapter.
    pub local_rank: Option<usize>,
}

impl GpuOptions {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        GpuOptions {
            backend: var("SWAV_WGPU_BACKEND").or_else(|| var("WGPU_BACKEND")),
            adapter: var("SWAV_WGPU_ADAPTER"),
            full_limits: var("SWAV_WGPU_FULL_LIMITS").is_some_and(|v| v != "0"),
            no_subgroups: var("SWAV_WGPU_NO_SUBGROUPS").is_some_and(|v| v != "0"),
            no_f16: var("SWAV_WGPU_NO_F16").is_some_and(|v| v != "0"),
            no_timestamps: var("SWAV_WGPU_NO_TIMESTAMPS").is_some_and(|v| v != "0"),
            // An unknown value is refused where the CLI parses --tune; here it means quick.
            tune: var("SWAV_WGPU_TUNE").and_then(|v| v.parse().ok()).unwrap_or(TuneMode::Quick),
            tune_cache: crate::gpu::tune::default_cache_path(),
            local_rank: None,
        }
    }

    fn backends(&self) -> Result<wgpu::Backends> {
        match &self.backend {
            None => Ok(wgpu::Backends::all()),
            Some(s) => {
                s.split(',').map(str::trim).filter(|n| !n.is_empty()).try_fold(wgpu::Backends::empty(), |all, n| {
                    let one = match n.to_ascii_lowercase().as_str() {
                        "vulkan" | "vk" => wgpu::Backends::VULKAN,
                        "metal" | "mtl" => wgpu::Backends::METAL,
                        "dx12" | "d3d12" => wgpu::Backends::DX12,
                        // Only the backends this build compiles in (Cargo.toml's wgpu features).
                        "gl" | "gles" | "opengl" => {
                            return Err(Error::Invalid(format!(
                                "backend '{n}': this build has no OpenGL backend; use vulkan, metal or dx12"
                            )))
                        }
                        _ => return Err(Error::Invalid(format!("unknown backend '{n}': use vulkan, metal or dx12"))),
                    };
                    Ok(all | one)
                })
            }
        }
    }
}

/// Counts of GPU objects created, so tests can prove a replayed plan creates nothing new.
#[derive(Default, Debug)]
pub struct Counters {
    pub buffers: AtomicU64,
    pub bind_groups: AtomicU64,
    pub pipelines: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub buffers: u64,
    pub bind_groups: u64,
    pub pipelines: u64,
}

pub(crate) type Pool = Arc<Mutex<HashMap<u64, Vec<wgpu::Buffer>>>>;

/// The device and everything cached on it. Cheap to share behind an `Arc`.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub class: AdapterClass,
    /// Lanes per subgroup where the subgroup kernels may run (the SUBGROUP feature and one
    /// fixed subgroup size, native only); `None` elsewhere.
    pub subgroup_size: Option<u32>,
    /// The device has f16 in shaders and 16-bit storage (`shader-f16`): the f16 kernels run.
    pub f16: bool,
    /// A planning device (`planning_copy`): tensors have sizes but no buffers, writes and
    /// bind groups are skipped, so a plan can be lowered, and measured, without its memory.
    pub planning: bool,
    /// Compiled kernels by identity (`KernelSource::name`), with the source each was built
    /// from, so a test can check that everything a run creates is in the validated list.
    pipelines: Mutex<HashMap<String, (wgpu::ComputePipeline, String)>>,
    pub(crate) pool: Pool,
    /// Readback buffers by size, reused so a replayed step creates no GPU objects.
    /// Readback buffers by size, reused (`tensor.rs`: `read_many`).
    pub(super) staging: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    pub counters: Arc<Counters>,
    /// Chooses GEMM variants per (op, shape) when plans are compiled.
    pub tuner: Tuner,
    /// Set when the device is lost (driver reset, GPU removed, the browser reclaimed it).
    lost: Arc<Mutex<Option<String>>>,
    /// The first GPU error outside any error scope.
    uncaptured: Arc<Mutex<Option<String>>>,
}

/// One line describing an adapter, as `swav-wgpu devices` prints it.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?}, driver: {} {})", info.name, info.backend, info.device_type, info.driver, info.driver_info)
}

/// Every adapter the instance sees (native only: browsers expose a single adapter).
#[cfg(not(target_arch = "wasm32"))]
pub async fn list_adapters(opts: &GpuOptions) -> Result<Vec<wgpu::Adapter>> {
    let instance = new_instance(opts)?;
    Ok(instance.enumerate_adapters(opts.backends()?).await)
}

fn new_instance(opts: &GpuOptions) -> Result<wgpu::Instance> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = opts.backends()?;
    Ok(wgpu::Instance::new(desc))
}

/// The adapter `Gpu::new` would use with these options.
pub async fn pick_adapter(opts: &GpuOptions) -> Result<wgpu::Adapter> {
    let instance = new_instance(opts)?;
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(want) = &opts.adapter {
        let want_lc = want.to_lowercase();
        let all = instance.enumerate_adapters(opts.backends()?).await;
        let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
        return all.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&want_lc)).ok_or_else(|| {
            Error::NoAdapter(format!(
                " whose name contains '{want}' (available: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ))
        });
    }
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(rank) = opts.local_rank {
        let mut gpus: Vec<wgpu::Adapter> = Vec::new();
        for a in instance.enumerate_adapters(opts.backends()?).await {
            let info = a.get_info();
            let is_gpu = matches!(info.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu);
            // One backend's list (two identical GPUs are two adapters; one GPU seen through
            // two backends is one).
            let same_backend = gpus.first().is_none_or(|g| g.get_info().backend == info.backend);
            if is_gpu && same_backend {
                gpus.push(a);
            }
        }
        if !gpus.is_empty() {
            let n = gpus.len();
            return Ok(gpus.swap_remove(rank % n));
        }
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter(format!(" ({e})")))
}

/// The subgroup size the subgroup GEMM and row kernels are generated for, when they may be
/// used: with the SUBGROUP feature, one fixed size of 4 to 64 lanes (a kernel's broadcasts
/// name lanes), and never on wasm (browsers want `enable subgroups;`, which naga does not
/// parse yet). On software adapters they are the default (a subgroup is the SIMD vector, and
/// sharing loads across it saves the per-lane loads that dominate); on real GPUs the
/// workgroup tiles stay the default and the subgroup tiles are tuning candidates.
fn subgroup_fast_path(adapter: &wgpu::Adapter, info: &wgpu::AdapterInfo, opts: &GpuOptions) -> Option<u32> {
    let size = info.subgroup_min_size;
    let usable = !cfg!(target_arch = "wasm32")
        && !opts.no_subgroups
        && adapter.features().contains(wgpu::Features::SUBGROUP)
        && size == info.subgroup_max_size
        && (4..=64).contains(&size)
        && size.is_power_of_two();
    usable.then_some(size)
}

impl Gpu {
    /// Opens the adapter chosen by `opts` with WebGPU's default limits (so native runs reject
    /// what a browser would), or with the adapter's full limits when `opts.full_limits`.
    pub async fn new(opts: &GpuOptions) -> Result<Arc<Gpu>> {
        let adapter = pick_adapter(opts).await?;
        let info = adapter.get_info();
        let limits = if opts.full_limits { adapter.limits() } else { wgpu::Limits::defaults() };
        let class = match info.device_type {
            wgpu::DeviceType::Cpu => AdapterClass::Cpu,
            _ => AdapterClass::Gpu,
        };
        let subgroup_size = subgroup_fast_path(&adapter, &info, opts);
        let mut features = if subgroup_size.is_some() { wgpu::Features::SUBGROUP } else { wgpu::Features::empty() };
        // Pass-boundary timestamps (WebGPU's `timestamp-query`) time kernels for the tuner,
        // `bench` and the profile wherever the adapter has them.
        if !opts.no_timestamps {
            features |= adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        }
        // f16 in shaders and 16-bit storage (WebGPU's `shader-f16`): the f16 storage kernels.
        let f16 = adapter.features().contains(wgpu::Features::SHADER_F16) && !opts.no_f16;
        if f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("swav-wgpu"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice { adapter: info.name.clone(), reason: e.to_string() })?;
        let lost = Arc::new(Mutex::new(None));
        {
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, message| {
                *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{reason:?}: {message}"));
            });
        }
        // wgpu's default handler panics on an error no scope caught; record the first instead,
        // so the trainer stops with it as an error (checkpoint intact) rather than a panic.
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        {
            let uncaptured = uncaptured.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                uncaptured.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| {
                    // wgpu's report spans lines; one line reads better inside our message.
                    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
                });
            }));
        }
        Ok(Arc::new(Gpu {
            lost,
            uncaptured,
            device,
            queue,
            info,
            limits,
            class,
            subgroup_size,
            f16,
            planning: false,
            pipelines: Mutex::new(HashMap::new()),
            pool: Arc::new(Mutex::new(HashMap::new())),
            staging: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            tuner: Tuner::new(opts.tune, opts.tune_cache.clone()),
        }))
    }

    /// Why the device was lost, once it has been (every later GPU call fails).
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// An error if the device was lost or reported an error no scope caught: what a step
    /// checks before its results are trusted.
    pub fn health(&self) -> Result<()> {
        if let Some(why) = self.lost() {
            return Err(Error::DeviceLost(why));
        }
        match self.uncaptured.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(message) => Err(Error::DeviceError { context: "a training step".into(), message }),
            None => Ok(()),
        }
    }

    /// Test aid (test builds only): a command WebGPU rejects (a mappable storage buffer),
    /// issued outside any error scope, as an engine or driver bug would be. `health()`
    /// reports it afterwards.
    #[cfg(feature = "test-hooks")]
    pub fn inject_rejected_command(&self) {
        let _ = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("injected fault: MAP_READ | STORAGE"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    }

    /// Native convenience: `Gpu::new` from the environment, blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_env_blocking() -> Result<Arc<Gpu>> {
        pollster::block_on(Gpu::new(&GpuOptions::from_env()))
    }

    pub fn describe(&self) -> String {
        describe_adapter(&self.info)
    }

    pub fn counters(&self) -> CounterSnapshot {
        CounterSnapshot {
            buffers: self.counters.buffers.load(Ordering::Relaxed),
            bind_groups: self.counters.bind_groups.load(Ordering::Relaxed),
            pipelines: self.counters.pipelines.load(Ordering::Relaxed),
        }
    }

    /// The largest tensor one storage binding may hold on this device.
    /// The same device for planning: the same adapter, limits and kernel choices (untuned),
    /// tensors with sizes but no memory (see `planning`).
    pub fn planning_copy(&self) -> Arc<Gpu> {
        Arc::new(Gpu {
            device: self.device.clone(),
            queue: self.queue.clone(),
            info: self.info.clone(),
            limits: self.limits.clone(),
            class: self.class,
            subgroup_size: self.subgroup_size,
            f16: self.f16,
            planning: true,
            pipelines: Mutex::new(HashMap::new()),
            pool: Arc::new(Mutex::new(HashMap::new())),
            staging: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            tuner: Tuner::new(TuneMode::Off, None),
            lost: self.lost.clone(),
            uncaptured: self.uncaptured.clone(),
        })
    }

    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// A compute pipeline, created once per `key` (kernel + variant + specialisation) and cached.
    /// `source` is only called on a cache miss. Natively a kernel the device rejects is an
    /// `Error::Validation` naming it (an error scope around its creation); in the browser
    /// the rejection goes to the console (the scope can only be awaited there).
    pub fn pipeline(&self, key: &str, source: impl FnOnce() -> String, entry: &str) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, _)) = cache.get(key) {
            return Ok(p.clone());
        }
        let source = source();
        #[cfg(not(target_arch = "wasm32"))]
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(key),
            source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[],
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Validation {
                context: format!("kernel {key} on {}", self.info.name),
                message: e.to_string(),
            });
        }
        self.counters.pipelines.fetch_add(1, Ordering::Relaxed);
        cache.insert(key.to_string(), (pipeline.clone(), source));
        Ok(pipeline)
    }

    /// Every kernel this device has compiled so far: (identity, WGSL source).
    pub fn compiled_kernels(&self) -> Vec<(String, String)> {
        let cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(String, String)> = cache.iter().map(|(k, (_, s))| (k.clone(), s.clone())).collect();
        v.sort();
        v
    }

    /// The size of the buffer a tensor of `bytes` gets (the pool's bucket, within the limit).
    pub(crate) fn buffer_size(&self, bytes: u64) -> u64 {
        pool_bucket(bytes).min(self.limits.max_buffer_size).max(bytes)
    }

    /// A storage buffer of at least `bytes` bytes, from the pool when one is free.
    pub(crate) fn storage_buffer(&self, bytes: u64) -> wgpu::Buffer {
        let size = self.buffer_size(bytes);
        if let Some(b) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&size).and_then(|v| v.pop()) {
            return b;
        }
        self.new_storage_buffer(size)
    }

    /// A new storage buffer of exactly `size` bytes.
    pub(crate) fn new_storage_buffer(&self, size: u64) -> wgpu::Buffer {
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor"),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn uniform_buffer(&self, words: &[u32]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        // Uniform structs are read in 16-byte rows: pad so the binding covers the whole struct.
        let mut padded = words.to_vec();
        while !padded.len().is_multiple_of(4) || padded.is_empty() {
            padded.push(0);
        }
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&padded),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Submits the dispatches as one compute pass.
    pub fn run(&self, dispatches: &[crate::gpu::Dispatch]) {
        self.run_all(dispatches);
    }

    /// `run` of any sequence of dispatches (a plan's segments between exchanges).
    pub fn run_all<'a>(&self, dispatches: impl IntoIterator<Item = &'a crate::gpu::Dispatch>) {
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        {
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("run"), timestamp_writes: None });
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        self.queue.submit([encoder.finish()]);
    }

    /// Waits until the queue is idle (native); a no-op on wasm where the browser drives work.
    pub fn wait_idle(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }
}

/// Pool buckets: sizes round up to 256 bytes below 1 MiB and to 1/8 of the next power of two
/// above, so reuse is likely and waste stays under 12.5 %.
fn pool_bucket(bytes: u64) -> u64 {
    let b = bytes.max(4);
    if b <= 1 << 20 {
        b.div_ceil(256) * 256
    } else {
        let step = b.next_power_of_two() / 8;
        b.div_ceil(step) * step
    }
}
