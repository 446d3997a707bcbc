//! The WGSL kernels (one file per layer in `kernels/`, each stating its formula) and the typed
//! uniform block of each: a `#[repr(C)]` struct whose fields are, in order, the fields of the
//! shader's `Params` struct. `shared/tests/wgsl_valid.rs` checks every pair with naga (names,
//! order and size), so a kernel and its caller cannot drift apart silently.
//!
//! Every kernel binds its inputs at 0..=2, its output at 3 and its parameters at 4.

use std::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

/// A kernel's uniform block.
pub trait Params: Pod {
    /// The shader struct's field names, in order.
    const FIELDS: &'static [&'static str];
}

macro_rules! params {
    ($($(#[$doc:meta])* $name:ident { $($field:ident),* $(,)? })*) => {$(
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
        pub struct $name { $(pub $field: u32),* }
        impl Params for $name {
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    )*};
}

params! {
    /// A convolution's geometry, for its forward and its input-gradient kernels.
    Conv { batch, in_channels, height, width, out_channels, out_height, out_width, kernel, stride, padding, groups, dilation }
    /// A pooling window over `planes` planes (forward and backward).
    Pool { planes, height, width, out_height, out_width, kernel, stride, padding }
    /// `len` values, nothing else.
    Elementwise { len, _pad0, _pad1, _pad2 }
    /// `len` values in planes of `plane` values, `channels` planes per image.
    PerChannel { len, channels, plane, _pad }
    /// An activation with up to two float constants (as bits).
    Activation { len, a_bits, b_bits, _pad }
    /// A dense layer.
    Linear { batch, in_features, out_features, _pad }
    /// The mean of each of `planes` planes of `plane` values.
    GlobalPool { planes, plane, _pad0, _pad1 }
    /// One part of a channel concatenation: `part` values of each image at `offset` of `total`.
    Concat { len, part, total, offset }
    /// An elementwise product whose second factor is constant over planes of `plane` values.
    Broadcast { len, plane, _pad0, _pad1 }
    /// Zero padding of `planes` planes.
    Pad { planes, height, width, top, left, out_height, out_width, len }
    /// Layer normalisation over `channels` of `pixels` pixels (images x `plane`), `eps` as bits.
    Norm { pixels, channels, plane, eps_bits }
    /// Instance normalisation of `rows` planes (images x `channels`) of `plane` pixels, `eps` as bits.
    InstanceNorm { rows, channels, plane, eps_bits }
    /// Nearest-neighbour upsampling of `planes` planes by `scale`.
    Upsample { planes, height, width, scale }
    /// Bilinear upsampling of `planes` planes by `scale` (`align_corners` 0 or 1).
    Resize { planes, height, width, scale, align_corners, _pad0, _pad1, _pad2 }
    /// An objective on `batch` images of `per_image` values (`kind` and `index`: see
    /// `lower::ObjectiveCode`), channels of `plane` values.
    ObjectiveSeed { batch, per_image, plane, kind, index, _pad0, _pad1, _pad2 }
}

/// An entry point whose uniform block is `P`: lowering can only pair it with a `P`.
pub struct Kernel<P> {
    pub entry: &'static str,
    _params: PhantomData<fn(P)>,
}

impl<P> Clone for Kernel<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Kernel<P> {}

/// What the layout test needs to know of one kernel.
#[doc(hidden)]
pub struct ParamLayout {
    pub entry: &'static str,
    pub source: &'static str,
    pub size: usize,
    pub fields: &'static [&'static str],
}

macro_rules! kernels {
    ($($name:ident = $entry:literal in $file:literal with $params:ident;)*) => {
        $(pub(crate) const $name: Kernel<$params> = Kernel { entry: $entry, _params: PhantomData };)*

        /// The WGSL source of every kernel, by entry point (the tests validate each with naga).
        pub const KERNELS: &[(&str, &str)] = &[$(($entry, include_str!($file))),*];

        /// The uniform block each kernel is called with, for the layout test.
        #[doc(hidden)]
        pub fn param_layouts() -> Vec<ParamLayout> {
            vec![$(ParamLayout { entry: $entry, source: include_str!($file), size: std::mem::size_of::<$params>(), fields: <$params as Params>::FIELDS }),*]
        }
    };
}

kernels! {
    NORMALIZE_FORWARD = "normalize_forward" in "kernels/normalize.wgsl" with PerChannel;
    CONV2D_FORWARD = "conv2d_forward" in "kernels/conv2d.wgsl" with Conv;
    CONV2D_TILED = "conv2d_tiled" in "kernels/conv2d_tiled.wgsl" with Conv;
    CONV2D_BACKWARD_TILED = "conv2d_backward_tiled" in "kernels/conv2d_tiled.wgsl" with Conv;
    CONV2D_BACKWARD = "conv2d_backward" in "kernels/conv2d_backward.wgsl" with Conv;
    ADD_CHANNEL_BIAS = "add_channel_bias" in "kernels/channel_bias.wgsl" with PerChannel;
    MAX_POOL2D_FORWARD = "max_pool2d_forward" in "kernels/max_pool2d.wgsl" with Pool;
    AVG_POOL2D_FORWARD = "avg_pool2d_forward" in "kernels/avg_pool2d.wgsl" with Pool;
    MAX_POOL2D_BACKWARD = "max_pool2d_backward" in "kernels/pool2d_backward.wgsl" with Pool;
    AVG_POOL2D_BACKWARD = "avg_pool2d_backward" in "kernels/pool2d_backward.wgsl" with Pool;
    LINEAR_FORWARD = "linear_forward" in "kernels/linear.wgsl" with Linear;
    LINEAR_BACKWARD = "linear_backward" in "kernels/linear_backward.wgsl" with Linear;
    GLOBAL_AVG_POOL_FORWARD = "global_avg_pool_forward" in "kernels/global_avg_pool.wgsl" with GlobalPool;
    GLOBAL_AVG_POOL_BACKWARD = "global_avg_pool_backward" in "kernels/elementwise_backward.wgsl" with PerChannel;
    BATCH_NORM_FORWARD = "batch_norm_forward" in "kernels/batch_norm.wgsl" with PerChannel;
    CHANNEL_SCALE = "channel_scale" in "kernels/elementwise_backward.wgsl" with PerChannel;
    ADD_FORWARD = "add_forward" in "kernels/add.wgsl" with Elementwise;
    RELU_FORWARD = "relu_forward" in "kernels/relu.wgsl" with Elementwise;
    RELU_BACKWARD = "relu_backward" in "kernels/elementwise_backward.wgsl" with PerChannel;
    CLIP_FORWARD = "clip_forward" in "kernels/activations.wgsl" with Activation;
    CLIP_BACKWARD = "clip_backward" in "kernels/activations.wgsl" with Activation;
    SIGMOID_FORWARD = "sigmoid_forward" in "kernels/activations.wgsl" with Activation;
    SIGMOID_BACKWARD = "sigmoid_backward" in "kernels/activations.wgsl" with Activation;
    LEAKY_RELU_FORWARD = "leaky_relu_forward" in "kernels/activations.wgsl" with Activation;
    LEAKY_RELU_BACKWARD = "leaky_relu_backward" in "kernels/activations.wgsl" with Activation;
    HARD_SIGMOID_FORWARD = "hard_sigmoid_forward" in "kernels/activations.wgsl" with Activation;
    HARD_SIGMOID_BACKWARD = "hard_sigmoid_backward" in "kernels/activations.wgsl" with Activation;
    HARD_SWISH_FORWARD = "hard_swish_forward" in "kernels/activations.wgsl" with Activation;
    HARD_SWISH_BACKWARD = "hard_swish_backward" in "kernels/activations.wgsl" with Activation;
    GELU_FORWARD = "gelu_forward" in "kernels/activations.wgsl" with Activation;
    GELU_BACKWARD = "gelu_backward" in "kernels/activations.wgsl" with Activation;
    CHANNEL_NORM_FORWARD = "channel_norm_forward" in "kernels/channel_norm.wgsl" with Norm;
    CHANNEL_NORM_BACKWARD = "channel_norm_backward" in "kernels/channel_norm.wgsl" with Norm;
    INSTANCE_NORM_FORWARD = "instance_norm_forward" in "kernels/instance_norm.wgsl" with InstanceNorm;
    INSTANCE_NORM_BACKWARD = "instance_norm_backward" in "kernels/instance_norm.wgsl" with InstanceNorm;
    CONCAT_FORWARD = "concat_forward" in "kernels/concat.wgsl" with Concat;
    CONCAT_BACKWARD = "concat_backward" in "kernels/concat.wgsl" with Concat;
    MUL_FORWARD = "mul_forward" in "kernels/mul.wgsl" with Broadcast;
    MUL_BACKWARD_A = "mul_backward_a" in "kernels/mul.wgsl" with Broadcast;
    MUL_BACKWARD_B = "mul_backward_b" in "kernels/mul.wgsl" with Broadcast;
    PAD2D_FORWARD = "pad2d_forward" in "kernels/pad2d.wgsl" with Pad;
    PAD2D_BACKWARD = "pad2d_backward" in "kernels/pad2d.wgsl" with Pad;
    UPSAMPLE2D_FORWARD = "upsample2d_forward" in "kernels/upsample2d.wgsl" with Upsample;
    UPSAMPLE2D_BACKWARD = "upsample2d_backward" in "kernels/upsample2d.wgsl" with Upsample;
    RESIZE_BILINEAR_FORWARD = "resize_bilinear_forward" in "kernels/resize_bilinear.wgsl" with Resize;
    RESIZE_BILINEAR_BACKWARD = "resize_bilinear_backward" in "kernels/resize_bilinear.wgsl" with Resize;
    OBJECTIVE_SEED = "objective_seed" in "kernels/objective.wgsl" with ObjectiveSeed;
}

impl Elementwise {
    pub fn new(len: usize) -> Self {
        Self { len: len as u32, ..Self::default() }
    }
}

impl PerChannel {
    pub fn new(len: usize, channels: usize, plane: usize) -> Self {
        Self { len: len as u32, channels: channels as u32, plane: plane as u32, _pad: 0 }
    }
}

impl Norm {
    pub fn new(pixels: usize, channels: usize, plane: usize, eps: f32) -> Self {
        Self { pixels: pixels as u32, channels: channels as u32, plane: plane as u32, eps_bits: eps.to_bits() }
    }
}

impl InstanceNorm {
    pub fn new(rows: usize, channels: usize, plane: usize, eps: f32) -> Self {
        Self { rows: rows as u32, channels: channels as u32, plane: plane as u32, eps_bits: eps.to_bits() }
    }
}

impl Resize {
    pub fn new(planes: usize, height: usize, width: usize, scale: usize, align_corners: bool) -> Self {
        let u = |v: usize| v as u32;
        Self { planes: u(planes), height: u(height), width: u(width), scale: u(scale), align_corners: u32::from(align_corners), _pad0: 0, _pad1: 0, _pad2: 0 }
    }
}

impl Activation {
    pub fn new(len: usize, a: f32, b: f32) -> Self {
        Self { len: len as u32, a_bits: a.to_bits(), b_bits: b.to_bits(), _pad: 0 }
    }
}

impl Conv {
    /// From the CPU engine's window geometry: the same numbers the CPU loops use.
    pub fn from_window(g: &crate::engine::cpu::layers::Window, out_channels: usize, kernel: usize, stride: usize, padding: usize, groups: usize, dilation: usize) -> Self {
        let v = [g.batch, g.in_channels, g.height, g.width, out_channels, g.out_height, g.out_width, kernel, stride, padding, groups, dilation].map(|v| v as u32);
        bytemuck::cast(v)
    }
}

impl Conv {
    /// A dense layer as a convolution of 1 x 1 images (for [`CONV2D_TILED`]).
    pub fn dense(batch: usize, in_features: usize, out_features: usize) -> Self {
        Self { batch: batch as u32, in_channels: in_features as u32, height: 1, width: 1, out_channels: out_features as u32, out_height: 1, out_width: 1, kernel: 1, stride: 1, padding: 0, groups: 1, dilation: 1 }
    }

    /// Workgroups of [`CONV2D_TILED`]: one per 32 x 32 tile of (output channels, output pixels).
    pub fn tiles(&self) -> usize {
        let pixels = (self.batch * self.out_height * self.out_width) as usize;
        (self.out_channels as usize).div_ceil(TILE) * pixels.div_ceil(TILE)
    }
}

/// The tile side of `conv2d_tiled.wgsl`.
pub const TILE: usize = 32;

impl Pool {
    pub fn from_window(g: &crate::engine::cpu::layers::Window, kernel: usize, stride: usize, padding: usize) -> Self {
        let v = [g.batch * g.in_channels, g.height, g.width, g.out_height, g.out_width, kernel, stride, padding].map(|v| v as u32);
        bytemuck::cast(v)
    }
}
