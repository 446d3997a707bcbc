//! Choosing where libtorch runs.

use anyhow::{bail, Result};
use tch::Device;

/// `auto` (CUDA when libtorch sees it, else CPU), `cpu`, `cuda` or `cuda:N`.
pub fn select(requested: &str, threads: usize) -> Result<Device> {
    tch::set_num_threads(threads.max(1) as i32);
    let cuda = tch::Cuda::is_available();
    let device = match requested {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" | "gpu" if cuda => Device::Cuda(0),
        s if s.starts_with("cuda:") && cuda => {
            let i: usize = s[5..].parse().map_err(|_| anyhow::anyhow!("`{s}` is not a device; use cuda:0, cuda:1, ..."))?;
            if i >= tch::Cuda::device_count() as usize {
                bail!("`{s}` does not exist: libtorch sees {} CUDA device(s)", tch::Cuda::device_count());
            }
            Device::Cuda(i)
        }
        s if s == "cuda" || s == "gpu" || s.starts_with("cuda:") => {
            bail!("--device {s}: libtorch sees no CUDA device here; use --device cpu")
        }
        other => bail!("unknown device `{other}`: use auto, cpu, cuda or cuda:N"),
    };
    Ok(device)
}

/// How the device is described to the user.
pub fn describe(device: Device, threads: usize) -> String {
    let format = crate::net::MemoryFormat::for_device(device).name();
    match device {
        Device::Cpu => format!("cpu ({threads} intra-op thread{}, {format})", if threads == 1 { "" } else { "s" }),
        Device::Cuda(i) => format!("cuda:{i} ({format})"),
        other => format!("{other:?}"),
    }
}

/// Keeps the memory of freed tensors in the process for the next step instead of handing it
/// back to the kernel. glibc serves allocations above a (dynamic) threshold with `mmap` and
/// unmaps them on free, so every step of a training loop page-faults its activations in again:
/// a small-cnn step on one CPU thread took 15.6 ms with glibc's defaults and 7.4 ms with this
/// (`tests/bench/train-step.sh`; PyTorch in Python gains the same from the same settings, which
/// it leaves to the user). A `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` in the
/// environment wins.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some() {
            return;
        }
        // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
        unsafe {
            // glibc refuses thresholds above its heap limit on some builds: 32 MB is always accepted.
            if libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 0 {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
