//! Datasets as they are distributed (MVTec AD, BTAD, MVTec LOCO AD, a plain folder of normal
//! images), in a folder or at an object-store URL (fingerprinted from the listing, copied once
//! into a local cache): layout detection, category discovery, image and ground-truth reading,
//! with errors that name the offending file. Must not simulate anomalies, train or score
//! anything.

mod category;
mod confine;
mod defects;
mod error;
mod fingerprint;
mod ground_truth;
mod image_io;
mod layout;
mod source;

pub use category::{Category, GroundTruthSource, TestImage};
pub use confine::{Escape, escape_from};
pub use defects::{DefectSpec, DefectsConfig};
pub use error::DataError;
pub use fingerprint::{FileDigest, Manifest, all_files, fingerprint, hex, relative_name};
pub use ground_truth::{GroundTruth, GroundTruthRegion};
pub use image_io::{
    IMAGE_EXTENSIONS, IMAGE_PIXELS, MaskSamples, image_size, is_image_file, read_mask, read_rgb,
    read_rgb_resized, read_rgb_resized_all,
};
pub use layout::{Layout, discover_categories, resolve_categories};
pub use source::{
    CategoryFingerprints, Dataset, DatasetCache, ListedFile, Listing, SourceError, block_on,
    is_url, local_folder, push,
};
