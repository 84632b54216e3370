//! Creating the device: ask the adapter for the limits large models need, record what was granted,
//! and turn uncaptured GPU errors and device loss into `Error`s instead of panics.

use super::kernel::KernelCache;
use crate::error::{Error, Result};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// What the page and the CLI report about the device.
#[derive(Debug, Clone, Serialize)]
pub struct GpuInfo {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub features: Vec<String>,
    pub limits: GrantedLimits,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantedLimits {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub min_storage_buffer_offset_alignment: u32,
}

/// Options for creating the context. Tests shrink the limits to exercise the "too large for this
/// device" paths without allocating gigabytes.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    pub max_buffer_size: Option<u64>,
    pub max_storage_buffer_binding_size: Option<u64>,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: GpuInfo,
    pub(super) kernels: KernelCache,
    /// The first error the device reported outside an error scope, or why it was lost.
    fault: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it is: nothing on it can be used again.
    lost: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    pub async fn new(options: GpuOptions) -> Result<Gpu> {
        let instance = instance();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter: {e}")))?;
        let want = wanted_limits(&adapter.limits(), &options);
        let features = adapter.features() & wgpu::Features::SHADER_F16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("squeeze"),
                required_features: features,
                required_limits: want,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot open the GPU device: {e}")))?;

        let fault = Arc::new(Mutex::new(None));
        let on_error = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            on_error.lock().unwrap().get_or_insert(fault_message(&e));
        }));
        let lost = Arc::new(Mutex::new(None));
        let (on_lost, lost_fault) = (lost.clone(), fault.clone());
        device.set_device_lost_callback(move |reason, message| {
            let why = format!("the GPU device was lost ({reason:?}): {message}");
            lost_fault.lock().unwrap().get_or_insert(why.clone());
            on_lost.lock().unwrap().get_or_insert(why);
        });

        let info = describe(&adapter.get_info(), &device);
        Ok(Gpu { device, queue, info, kernels: KernelCache::default(), fault, lost })
    }

    pub fn limits(&self) -> &GrantedLimits {
        &self.info.limits
    }

    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Why the device was lost, if it was (a driver reset, another tab's crash, or `destroy`): the
    /// page then opens a new one and uploads the model again.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap().clone()
    }

    /// Fail with the device's own message if it reported an error or was lost since it was created.
    pub fn check(&self) -> Result<()> {
        match self.fault.lock().unwrap().clone() {
            Some(m) => Err(Error::Gpu(m)),
            None => Ok(()),
        }
    }
}

/// An uncaptured error as the user should read it: running out of memory names what to reduce.
pub fn fault_message(e: &wgpu::Error) -> String {
    match e {
        wgpu::Error::OutOfMemory { .. } => "the GPU ran out of memory: load a smaller model (or a more \
             compressed GGUF), use a shorter context or fewer calibration tokens, or close other tabs and \
             programs that use the GPU"
            .to_string(),
        other => other.to_string(),
    }
}

fn instance() -> wgpu::Instance {
    #[cfg(target_arch = "wasm32")]
    let desc = wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    };
    // Natively Vulkan covers Linux GPUs and lavapipe; WGPU_BACKEND / WGPU_ADAPTER_NAME still override.
    #[cfg(not(target_arch = "wasm32"))]
    let desc = {
        let mut d = wgpu::InstanceDescriptor::new_without_display_handle();
        d.backends = wgpu::Backends::VULKAN;
        d.with_env()
    };
    wgpu::Instance::new(desc)
}

/// The defaults, raised to what the adapter offers where model-sized buffers need it.
fn wanted_limits(adapter: &wgpu::Limits, options: &GpuOptions) -> wgpu::Limits {
    let cap = |v: u64, c: Option<u64>| c.map_or(v, |c| v.min(c));
    let max_buffer_size = cap(adapter.max_buffer_size, options.max_buffer_size);
    let binding = cap(adapter.max_storage_buffer_binding_size, options.max_storage_buffer_binding_size)
        .min(max_buffer_size);
    wgpu::Limits {
        max_buffer_size,
        max_storage_buffer_binding_size: binding,
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage.min(10),
        max_compute_workgroup_storage_size: adapter.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: adapter.max_compute_invocations_per_workgroup,
        max_compute_workgroup_size_x: adapter.max_compute_workgroup_size_x,
        max_compute_workgroup_size_y: adapter.max_compute_workgroup_size_y,
        ..wgpu::Limits::default()
    }
}

fn describe(adapter: &wgpu::AdapterInfo, device: &wgpu::Device) -> GpuInfo {
    let l = device.limits();
    let features = device.features().iter().map(|f| format!("{f:?}")).collect();
    GpuInfo {
        adapter: if adapter.name.is_empty() { "WebGPU adapter".into() } else { adapter.name.clone() },
        backend: format!("{:?}", adapter.backend),
        device_type: format!("{:?}", adapter.device_type),
        features,
        limits: GrantedLimits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
        },
    }
}
