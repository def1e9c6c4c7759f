use std::path::PathBuf;

/// Everything that can be wrong with a dataset on disk. Every variant names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: no such file or folder")]
    NotFound { path: PathBuf },
    #[error("category `{category}` does not exist in {root}{}", listed(available))]
    UnknownCategory {
        category: String,
        root: PathBuf,
        available: Vec<String>,
    },
    #[error(
        "{path}: unknown dataset layout (expected MVTec AD `train/good`, BTAD `train/ok`, \
         MVTec LOCO AD `validation/good` or `defects_config.json`, or a folder of images)"
    )]
    UnknownLayout { path: PathBuf },
    #[error("{path}: no training images")]
    EmptyTrain { path: PathBuf },
    #[error("category `{name}`: {reason}")]
    CategoryName { name: String, reason: String },
    #[error("{path}: {reason}")]
    ImageName { path: PathBuf, reason: String },
    #[error(
        "{first} and {second} have the same name `{id}`: their anomaly maps would be one file; rename one"
    )]
    DuplicateId {
        first: PathBuf,
        second: PathBuf,
        id: String,
    },
    #[error("{image}: two masks could be its own, {first} and {second}; keep one")]
    AmbiguousMask {
        image: PathBuf,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{image}: missing ground-truth mask (looked for {expected})")]
    MissingMask { image: PathBuf, expected: String },
    #[error("{path}: unreadable image: {source}")]
    Unreadable {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error(
        "{path}: the image is {width}×{height} pixels, over the limit of {limit} pixels per image"
    )]
    TooManyPixels {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error(
        "{mask}: mask is {mask_width}×{mask_height} but its image {image} is {image_width}×{image_height}"
    )]
    MaskSizeMismatch {
        mask: PathBuf,
        image: PathBuf,
        mask_width: u32,
        mask_height: u32,
        image_width: u32,
        image_height: u32,
    },
    #[error("{path}: invalid defects config: {message}")]
    DefectsConfig { path: PathBuf, message: String },
    #[error("{path}: invalid ground-truth region: {message}")]
    GroundTruthRegion { path: PathBuf, message: String },
    #[error(transparent)]
    Walk(#[from] crate::walk::WalkError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound { path }
        } else {
            DataError::Io { path, source }
        }
    }
}

/// ` (available: a, b)`, or nothing where the names are withheld.
fn listed(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!(" (available: {})", available.join(", "))
    }
}

impl DataError {
    /// The error as told to a remote client: without the names of folders it did not give.
    pub fn without_listings(self) -> DataError {
        match self {
            DataError::UnknownCategory { category, root, .. } => DataError::UnknownCategory {
                category,
                root,
                available: Vec::new(),
            },
            other => other,
        }
    }
}
