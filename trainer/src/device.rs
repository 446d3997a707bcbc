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
    match device {
        Device::Cpu => format!("cpu ({threads} intra-op thread{})", if threads == 1 { "" } else { "s" }),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}
