//! Pixel grids and the operations every stage shares: binary masks, connected components,
//! bilinear resizing, the channel-first float layout of images. Knows nothing about datasets,
//! anomaly simulation or models.

mod components;
mod mask;
mod resize;

pub use components::{Components, Connectivity, label_components};
pub use mask::{BoundingBox, Mask};
pub use resize::{resize_bilinear_f32, resize_rgb, write_chw};
