//! The `swav-wgpu` command line.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use swav_wgpu::gpu::{describe_adapter, list_adapters, pick_adapter, GpuOptions};

#[derive(Parser)]
#[command(name = "swav-wgpu", version, about = "SwAV self-supervised learning on any GPU through WebGPU")]
struct Cli {
    /// Backend(s) to use: vulkan, metal, dx12, gl (comma-separated). Default: all.
    /// Also read from SWAV_WGPU_BACKEND or WGPU_BACKEND.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use the adapter whose name contains this text (case-insensitive). Also SWAV_WGPU_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Request the adapter's full limits instead of WebGPU's defaults (native only).
    #[arg(long, global = true)]
    full_limits: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu can see and mark the one that would be used.
    Devices,
}

fn options(cli: &Cli) -> GpuOptions {
    let env = GpuOptions::from_env();
    GpuOptions {
        backend: cli.backend.clone().or(env.backend),
        adapter: cli.adapter.clone().or(env.adapter),
        full_limits: cli.full_limits || env.full_limits,
    }
}

fn devices(opts: &GpuOptions) -> swav_wgpu::Result<()> {
    let adapters = pollster::block_on(list_adapters(opts))?;
    if adapters.is_empty() {
        return Err(swav_wgpu::Error::NoAdapter(String::new()));
    }
    let chosen = pollster::block_on(pick_adapter(opts)).ok().map(|a| a.get_info());
    for a in &adapters {
        let info = a.get_info();
        let mark = if chosen.as_ref() == Some(&info) { "*" } else { " " };
        let l = a.limits();
        println!("{mark} {}", describe_adapter(&info));
        println!(
            "    max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB, workgroup storage {} KiB, invocations/workgroup {}, storage buffers/stage {}",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage
        );
    }
    match chosen {
        Some(_) => println!(
            "(* = the adapter swav-wgpu would use; it requests {} limits)",
            if opts.full_limits { "the adapter's full" } else { "WebGPU's default" }
        ),
        None => println!("(none of these matches the selection)"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = options(&cli);
    let result = match cli.command {
        Command::Devices => devices(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
