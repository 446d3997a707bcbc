//! The device: finding an adapter, opening a device on it, noticing when it is lost, and the
//! error scopes that turn what wgpu reports about one call into an [`Error`].

use std::sync::Arc;

use crate::{Error, Result};

/// An open device with its queue and the adapter it runs on. Separate from
/// [`super::GpuEngine`] so that tests and pages can share one device between models.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    /// Set (with the reason) when the device is lost; shared by every engine on it.
    pub lost: DeviceLost,
}

/// Why the device was lost, once it was.
pub type DeviceLost = Arc<std::sync::Mutex<Option<String>>>;

/// Finds the default adapter and opens a device on it.
pub async fn request_device() -> Result<GpuContext> {
    #[cfg(target_arch = "wasm32")]
    if !browser_has_webgpu() {
        return Err(Error::NoGpuAdapter("this browser does not expose navigator.gpu".into()));
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions::default())
        .await
        .map_err(|e| {
            if cfg!(target_arch = "wasm32") {
                // wgpu lists every native backend it lacks here, which tells a user nothing.
                Error::NoGpuAdapter("the browser offers WebGPU but no adapter for it".into())
            } else {
                Error::NoGpuAdapter(e.to_string())
            }
        })?;
    let info = adapter.get_info();
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("advlens"),
            required_limits: adapter.limits(),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoGpuAdapter(format!("adapter `{}` refused a device: {e}", info.name)))?;
    let lost = DeviceLost::default();
    let flag = lost.clone();
    device.set_device_lost_callback(move |reason, message| {
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message} ({reason:?})"));
    });
    Ok(GpuContext { device, queue, adapter: info, lost })
}

#[cfg(target_arch = "wasm32")]
fn browser_has_webgpu() -> bool {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok();
    navigator
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// Validation and out-of-memory error scopes around one call.
pub(crate) fn error_scopes(device: &wgpu::Device) -> ErrorScopes {
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    ErrorScopes { oom, validation }
}

/// The error scopes of one call; [`ErrorScopes::check`] turns what they caught into an [`Error`].
/// Fields drop in declaration order, and wgpu requires scopes to pop in reverse order of
/// pushing: `oom` (pushed last) must come first, or a call that fails before `check` (a lost
/// device) panics in wgpu instead of returning its error.
pub(crate) struct ErrorScopes {
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    pub(crate) async fn check(self, batch: usize) -> Result<()> {
        // Scopes pop in reverse order of pushing.
        if let Some(e) = self.oom.pop().await {
            return Err(Error::Gpu(format!("out of GPU memory for a batch of {batch}: {e}")));
        }
        if let Some(e) = self.validation.pop().await {
            return Err(Error::Gpu(e.to_string()));
        }
        Ok(())
    }
}
