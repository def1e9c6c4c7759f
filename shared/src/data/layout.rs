use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DataError, image_io::is_image_file};

/// The folder layouts read as distributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `train/good`, `test/<defect|good>`, `ground_truth/<defect>/<id>_mask.png`.
    MvtecAd,
    /// `train/ok`, `test/{ok,ko}`, `ground_truth/ko/<id>.{png,bmp}`.
    Btad,
    /// `{train,validation}/good`, `test/{good,logical_anomalies,structural_anomalies}`,
    /// `ground_truth/<type>/<id>/NNN.png` and `defects_config.json`.
    MvtecLoco,
    /// A folder holding normal images only (a user's own product line).
    Folder,
}

impl Layout {
    /// Recognises the layout of one category folder.
    pub fn detect(category_dir: &Path) -> Result<Layout, DataError> {
        if !category_dir.is_dir() {
            return Err(DataError::NotFound {
                path: category_dir.to_path_buf(),
            });
        }
        if category_dir.join("defects_config.json").is_file()
            || category_dir.join("validation/good").is_dir()
        {
            return Ok(Layout::MvtecLoco);
        }
        if category_dir.join("train/good").is_dir() {
            return Ok(Layout::MvtecAd);
        }
        if category_dir.join("train/ok").is_dir() {
            return Ok(Layout::Btad);
        }
        let entries =
            std::fs::read_dir(category_dir).map_err(|e| DataError::io(category_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(category_dir, e))?;
            if entry.path().is_file() && is_image_file(&entry.path()) {
                return Ok(Layout::Folder);
            }
        }
        Err(DataError::UnknownLayout {
            path: category_dir.to_path_buf(),
        })
    }

    /// Name of the folder that holds defect-free test images.
    pub fn good_folder(self) -> &'static str {
        match self {
            Layout::Btad => "ok",
            _ => "good",
        }
    }
}

/// Every sub-folder of `root` that has a recognised layout, sorted by name.
pub fn discover_categories(root: &Path) -> Result<Vec<String>, DataError> {
    let entries = std::fs::read_dir(root).map_err(|e| DataError::io(root, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(root, e))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        if Layout::detect(&path).is_ok() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Expands a category selection: `all` means every discovered category; otherwise each name
/// must exist under `root`.
pub fn resolve_categories(root: &Path, selection: &[String]) -> Result<Vec<String>, DataError> {
    select_categories(discover_categories(root)?, selection, root)
}

/// The categories of `available` that a selection (`["all"]` or names) names; a name that is
/// not available is an error naming `root`.
pub(crate) fn select_categories(
    available: Vec<String>,
    selection: &[String],
    root: &Path,
) -> Result<Vec<String>, DataError> {
    if selection.iter().any(|s| s == "all") {
        return Ok(available);
    }
    selection
        .iter()
        .map(|name| {
            if available.contains(name) {
                Ok(name.clone())
            } else {
                Err(DataError::UnknownCategory {
                    category: name.clone(),
                    root: root.to_path_buf(),
                    available: available.clone(),
                })
            }
        })
        .collect()
}
