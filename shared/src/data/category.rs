use std::path::{Path, PathBuf};

use super::{DataError, DefectsConfig, IMAGE_EXTENSIONS, Layout, image_io::is_image_file};

/// One product category of a dataset: its normal training images, validation images (LOCO),
/// test images with their ground truth, and LOCO's defect types.
#[derive(Clone, Debug)]
pub struct Category {
    pub name: String,
    pub root: PathBuf,
    pub layout: Layout,
    pub train: Vec<PathBuf>,
    /// Defect-free validation images (LOCO `validation/good`); empty for other layouts.
    pub validation: Vec<PathBuf>,
    /// Labelled anomalies for model selection: `validation/<defect>/` images (any layout) with
    /// their ground truth under `ground_truth/validation/<defect>/`.
    pub validation_anomalies: Vec<TestImage>,
    pub test: Vec<TestImage>,
    pub defects: Option<DefectsConfig>,
}

/// A test image, its folder name (`good`, `crack`, `logical_anomalies`, …) and where its
/// ground truth lives.
#[derive(Clone, Debug, PartialEq)]
pub struct TestImage {
    pub path: PathBuf,
    /// The test sub-folder: the defect type, or the layout's defect-free folder.
    pub kind: String,
    pub anomalous: bool,
    pub ground_truth: Option<GroundTruthSource>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum GroundTruthSource {
    /// One binary mask for the whole image (MVTec AD, BTAD).
    Mask(PathBuf),
    /// A folder with one PNG per defect region (MVTec LOCO AD).
    Regions(PathBuf),
}

impl TestImage {
    /// The file stem, which names the anomaly map `<kind>/<id>.tiff`.
    pub fn id(&self) -> &str {
        self.path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
    }
}

impl Category {
    /// Lists a category's files and checks that every anomalous test image has ground truth.
    /// The category's name must be a plain folder name, and its test images must have unique,
    /// plain names within their folder kind (they name the anomaly maps).
    pub fn open(dataset_root: &Path, name: &str) -> Result<Category, DataError> {
        Self::read(dataset_root, name, true)
    }

    /// [`Category::open`] reading no file's content (no defects config): the lists only.
    pub(crate) fn scan(dataset_root: &Path, name: &str) -> Result<Category, DataError> {
        Self::read(dataset_root, name, false)
    }

    fn read(dataset_root: &Path, name: &str, read_files: bool) -> Result<Category, DataError> {
        crate::store::validate_name(name).map_err(|e| DataError::CategoryName {
            name: name.escape_debug().to_string(),
            reason: e.reason.to_string(),
        })?;
        let root = dataset_root.join(name);
        if !root.is_dir() {
            let available = super::discover_categories(dataset_root).unwrap_or_default();
            if !dataset_root.is_dir() {
                return Err(DataError::NotFound {
                    path: dataset_root.to_path_buf(),
                });
            }
            return Err(DataError::UnknownCategory {
                category: name.to_string(),
                root: dataset_root.to_path_buf(),
                available,
            });
        }
        let layout = Layout::detect(&root)?;
        let (train_dir, validation) = match layout {
            Layout::MvtecAd => (root.join("train/good"), Vec::new()),
            Layout::Btad => (root.join("train/ok"), Vec::new()),
            Layout::MvtecLoco => {
                let validation_dir = root.join("validation/good");
                let validation = if validation_dir.is_dir() {
                    list_images(&validation_dir)?
                } else {
                    Vec::new()
                };
                (root.join("train/good"), validation)
            }
            Layout::Folder => (root.clone(), Vec::new()),
        };
        let train = if train_dir.is_dir() {
            list_images(&train_dir)?
        } else {
            Vec::new()
        };
        if train.is_empty() {
            return Err(DataError::EmptyTrain { path: train_dir });
        }
        let (test, validation_anomalies) = if layout == Layout::Folder {
            (Vec::new(), Vec::new())
        } else {
            let validation_anomalies = list_labelled(&root, layout, "validation")?
                .into_iter()
                .filter(|t| t.anomalous)
                .collect();
            let test = list_labelled(&root, layout, "test")?;
            check_ids(&test)?;
            (test, validation_anomalies)
        };
        let defects_path = root.join("defects_config.json");
        let defects = if defects_path.is_file() {
            read_files
                .then(|| DefectsConfig::read(&defects_path))
                .transpose()?
        } else if layout == Layout::MvtecLoco
            && test
                .iter()
                .chain(&validation_anomalies)
                .any(|t| t.anomalous)
        {
            return Err(DataError::NotFound { path: defects_path });
        } else {
            None
        };
        Ok(Category {
            name: name.to_string(),
            root,
            layout,
            train,
            validation,
            validation_anomalies,
            test,
            defects,
        })
    }

    /// The normal images training and model selection read: `train` and `validation`.
    pub fn training_images(&self) -> Vec<PathBuf> {
        self.train.iter().chain(&self.validation).cloned().collect()
    }

    /// Test images grouped by kind, in folder order.
    pub fn test_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = Vec::new();
        for t in &self.test {
            if !kinds.contains(&t.kind) {
                kinds.push(t.kind.clone());
            }
        }
        kinds
    }
}

/// Image files directly inside `dir`, sorted by name.
fn list_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden && path.is_file() && is_image_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && path.is_dir()
            && !name.starts_with('.')
        {
            dirs.push((name.to_string(), path.clone()));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The images of a labelled split (`test`, or `validation`) by kind, each anomalous one with
/// its ground truth (`ground_truth/<kind>/` for the test split, `ground_truth/validation/<kind>/`
/// for validation).
fn list_labelled(root: &Path, layout: Layout, split: &str) -> Result<Vec<TestImage>, DataError> {
    let split_dir = root.join(split);
    if !split_dir.is_dir() {
        return Ok(Vec::new());
    }
    let ground_truth_root = match split {
        "test" => root.join("ground_truth"),
        other => root.join("ground_truth").join(other),
    };
    let mut test = Vec::new();
    for (kind, dir) in sorted_subdirs(&split_dir)? {
        let anomalous = kind != layout.good_folder();
        for path in list_images(&dir)? {
            let ground_truth = if anomalous {
                Some(find_ground_truth(&ground_truth_root, layout, &kind, &path)?)
            } else {
                None
            };
            test.push(TestImage {
                path,
                kind: kind.clone(),
                anomalous,
                ground_truth,
            });
        }
    }
    Ok(test)
}

/// Test images name their anomaly maps (`<kind>/<id>.tiff`): every name must be a plain name,
/// and no two images of a kind may share one (`000.png` and `000.bmp`).
fn check_ids(test: &[TestImage]) -> Result<(), DataError> {
    let mut seen: std::collections::HashMap<(&str, &str), &Path> = std::collections::HashMap::new();
    for image in test {
        let id = image
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| DataError::ImageName {
                path: image.path.clone(),
                reason: "the file name is not UTF-8; rename it".into(),
            })?;
        crate::store::validate_name(id).map_err(|e| DataError::ImageName {
            path: image.path.clone(),
            reason: format!("its name {}; rename it", e.reason),
        })?;
        if let Some(first) = seen.insert((image.kind.as_str(), id), &image.path) {
            return Err(DataError::DuplicateId {
                first: first.to_path_buf(),
                second: image.path.clone(),
                id: id.to_string(),
            });
        }
    }
    Ok(())
}

fn find_ground_truth(
    ground_truth_root: &Path,
    layout: Layout,
    kind: &str,
    image: &Path,
) -> Result<GroundTruthSource, DataError> {
    let stem = image
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let gt_dir = ground_truth_root.join(kind);
    if layout == Layout::MvtecLoco {
        let dir = gt_dir.join(stem);
        return if dir.is_dir() {
            Ok(GroundTruthSource::Regions(dir))
        } else {
            Err(DataError::MissingMask {
                image: image.to_path_buf(),
                expected: format!("{}/", dir.display()),
            })
        };
    }
    // MVTec AD names masks `<id>_mask.png`, BTAD `<id>.png|bmp`; a mask of the other form
    // beside it makes the choice ambiguous, so it is refused rather than guessed.
    let candidates = match layout {
        Layout::Btad => [stem.to_string(), format!("{stem}_mask")],
        _ => [format!("{stem}_mask"), stem.to_string()],
    };
    let gt = &gt_dir;
    let found: Vec<PathBuf> = candidates
        .iter()
        .flat_map(|base| {
            IMAGE_EXTENSIONS
                .iter()
                .map(move |ext| gt.join(format!("{base}.{ext}")))
        })
        .filter(|path| path.is_file())
        .collect();
    match found.as_slice() {
        [only] => return Ok(GroundTruthSource::Mask(only.clone())),
        [first, second, ..] => {
            return Err(DataError::AmbiguousMask {
                image: image.to_path_buf(),
                first: first.clone(),
                second: second.clone(),
            });
        }
        [] => {}
    }
    Err(DataError::MissingMask {
        image: image.to_path_buf(),
        expected: format!(
            "{}/{}.png or {}/{stem}.png",
            gt_dir.display(),
            candidates[0],
            gt_dir.display()
        ),
    })
}
