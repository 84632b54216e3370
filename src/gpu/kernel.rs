//! Compiled compute kernels. A kernel is one entry point of one `shaders/<name>.wgsl` file, specialised
//! by constants prepended to the source (`const FORMAT: u32 = 3u;`) and preceded by the shared WGSL
//! libraries it includes (`shaders/blocks.wgsl`, `shaders/reduce.wgsl`), with an explicit bind group
//! layout so bindings an entry point does not touch never break bind-group creation.

use super::Gpu;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a kernel uses one binding, in binding-number order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Uniform,
    Read,
    ReadWrite,
}

/// Which kernel to build: shader file name (without `.wgsl`), entry point, constants, bindings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    pub shader: &'static str,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, u32)>,
    pub bindings: &'static [Access],
}

pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub spec: KernelSpec,
}

#[derive(Default)]
pub(crate) struct KernelCache(Mutex<HashMap<KernelSpec, Arc<Kernel>>>);

/// The shared block decoders (`shaders/blocks.wgsl`), prepended to every shader that reads weights as
/// stored; it needs the FORMAT, BLOCK_SIZE and BLOCK_BYTES constants and a `packed` binding.
const BLOCKS: &str = include_str!("../../shaders/blocks.wgsl");
/// The row kernels' workgroup index and tree reduction (`shaders/reduce.wgsl`); it needs a ROW_WG
/// constant, the threads per workgroup.
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// The WGSL of `shaders/<name>.wgsl`, compiled into the binary, after the libraries it includes.
fn shader_source(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "dequant" => &[BLOCKS, include_str!("../../shaders/dequant.wgsl")],
        "stats" => &[REDUCE, include_str!("../../shaders/stats.wgsl")],
        "matmul" => &[BLOCKS, include_str!("../../shaders/matmul.wgsl")],
        "embed" => &[BLOCKS, include_str!("../../shaders/embed.wgsl")],
        "norm" => &[REDUCE, include_str!("../../shaders/norm.wgsl")],
        "rope" => &[include_str!("../../shaders/rope.wgsl")],
        "attention" => &[include_str!("../../shaders/attention.wgsl")],
        "elementwise" => &[include_str!("../../shaders/elementwise.wgsl")],
        "logits" => &[REDUCE, include_str!("../../shaders/logits.wgsl")],
        "calib" => &[include_str!("../../shaders/calib.wgsl")],
        "actquant" => &[REDUCE, include_str!("../../shaders/actquant.wgsl")],
        "sparse" => &[include_str!("../../shaders/sparse.wgsl")],
        "quantize" => &[include_str!("../../shaders/quantize.wgsl")],
        _ => return None,
    })
}

impl Gpu {
    /// The compiled kernel for `spec`, built on first use and cached for the life of the device.
    pub async fn kernel(&self, spec: KernelSpec) -> Result<Arc<Kernel>> {
        if let Some(k) = self.kernels.0.lock().unwrap().get(&spec) {
            return Ok(k.clone());
        }
        let parts = shader_source(spec.shader)
            .ok_or_else(|| Error::Gpu(format!("no shader named '{}'", spec.shader)))?;
        let mut source: String =
            spec.constants.iter().map(|(name, value)| format!("const {name}: u32 = {value}u;\n")).collect();
        for part in parts {
            source.push_str(part);
        }
        let label = format!("{}::{}", spec.shader, spec.entry);

        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let layout = self.bind_group_layout(&label, spec.bindings);
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("kernel {label} {:?} failed to build: {e}", spec.constants)));
        }
        let kernel = Arc::new(Kernel { pipeline, layout, spec: spec.clone() });
        self.kernels.0.lock().unwrap().insert(spec, kernel.clone());
        Ok(kernel)
    }

    fn bind_group_layout(&self, label: &str, bindings: &[Access]) -> wgpu::BindGroupLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, access)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match access {
                        Access::Uniform => wgpu::BufferBindingType::Uniform,
                        Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        })
    }

    /// Record one dispatch of `kernel` over `workgroups` with `resources` bound in order.
    pub fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        resources: &[wgpu::BindingResource],
        workgroups: [u32; 3],
    ) {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry { binding: i as u32, resource: r.clone() })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: kernel.pipeline_label(),
            layout: &kernel.layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
    }

    /// A uniform buffer holding `value` (a `#[repr(C)]` Pod struct padded to 16 bytes).
    pub fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform"),
            size: std::mem::size_of::<T>().next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, bytemuck::bytes_of(value));
        buffer
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default())
    }
}

impl Kernel {
    fn pipeline_label(&self) -> Option<&str> {
        Some(self.spec.entry)
    }
}
