//! Documents written by format 1 of the store and the wire (committed in the repository's `fixtures/format-1/`
//! from a real run) are read by every later version, and a reader accepts the fields a newer
//! minor version adds (model cards excepted: their own format number governs them).

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use slsg::data::Manifest;
use slsg::infer::ModelCard;
use slsg::job::{JobResult, JobSpec, Plan};
use slsg::registry::{HistoryEntry, VersionCard};

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fixtures",
        "format-1",
        name,
    ]
    .iter()
    .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads `text` as `T`, then again with a field no version has written yet added to its top
/// level.
fn reads<T: DeserializeOwned>(text: &str, name: &str) -> T {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut newer = value.clone();
    newer
        .as_object_mut()
        .unwrap_or_else(|| panic!("{name} is a JSON object"))
        .insert("added_by_a_newer_minor".into(), serde_json::json!({"x": 1}));
    serde_json::from_value::<T>(newer).unwrap_or_else(|e| panic!("{name} with a newer field: {e}"));
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn documents_of_format_1_are_read_and_newer_fields_are_ignored() {
    let pretrain: JobResult = reads(&fixture("pretrain-result.json"), "pretrain result");
    assert!(pretrain.steps > 0);
    let segnet: JobResult = reads(&fixture("segnet-result.json"), "segnet result");
    assert!(segnet.steps > 0);
    let spec: JobSpec = reads(&fixture("segnet-spec.json"), "job spec");
    spec.config.validate("segnet-spec.json").unwrap();
    assert_eq!(spec.category, "weave");
    // A model card is read strictly: its `format` is the model's compatibility contract, and a
    // key it does not know could change how the model scores, so it is refused, not ignored.
    let card: ModelCard = serde_json::from_str(&fixture("model.json")).unwrap();
    assert_eq!(card.format, slsg::infer::MODEL_FORMAT_VERSION);
    let version: VersionCard = reads(&fixture("card.json"), "registry card");
    assert_eq!(version.category, "weave");
    for line in fixture("history.jsonl").lines() {
        let _: HistoryEntry = reads(line, "registry history");
    }
    let manifest: Manifest = reads(&fixture("data.json"), "image manifest");
    assert!(!manifest.files.is_empty());
    let plan: Plan = serde_json::from_str(&fixture("plan.json")).unwrap();
    assert_eq!(plan.jobs.len(), 2);
}
