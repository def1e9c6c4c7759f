//! The metrics against values computed independently by scikit-learn and brute-force Python
//! (`fixtures/make_metric_reference.py`, committed output `fixtures/metric_reference.json`).

use std::path::PathBuf;

use serde_json::Value;
use slsg::data::{DefectSpec, GroundTruth, GroundTruthRegion};
use slsg::metrics::{EvalOptions, EvalSample, ImageScore, evaluate};

fn cases() -> Vec<Value> {
    let text = include_str!("../fixtures/metric_reference.json");
    let root: Value = serde_json::from_str(text).expect("reference JSON");
    root["cases"].as_array().expect("cases").clone()
}

fn samples(case: &Value) -> Vec<EvalSample> {
    case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let regions = image["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| GroundTruthRegion {
                    source: PathBuf::from("reference"),
                    pixels: r["pixels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_u64().unwrap() as u32)
                        .collect(),
                    defect: if r["defect"].is_null() {
                        None
                    } else {
                        Some(serde_json::from_value::<DefectSpec>(r["defect"].clone()).unwrap())
                    },
                })
                .collect();
            EvalSample {
                name: format!("reference image {}", image["kind"]),
                kind: image["kind"].as_str().unwrap().to_string(),
                anomalous: image["anomalous"].as_bool().unwrap(),
                ground_truth: GroundTruth {
                    width: image["width"].as_u64().unwrap() as u32,
                    height: image["height"].as_u64().unwrap() as u32,
                    regions,
                },
                map: image["map"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect()
}

fn close(name: &str, actual: Option<f64>, expected: &Value) {
    let expected = expected
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: no expected value"));
    let actual = actual.unwrap_or_else(|| panic!("{name}: metric missing"));
    assert!(
        (actual - expected).abs() < 1e-9,
        "{name}: {actual} vs reference {expected}"
    );
}

/// The reference maps are rounded to at most six decimals, which stay distinct and ordered
/// as f32, so every tie of the reference is a tie here too.
#[test]
fn matches_independent_reference_values() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let samples = samples(&case);
        let expected = &case["expected"];
        let by_max = evaluate(
            name,
            &samples,
            &EvalOptions {
                image_score: ImageScore::Max,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            by_max.thresholds.exact,
            "{name}: small cases use exact thresholds"
        );
        close(
            &format!("{name} pixel AUROC"),
            by_max.pixel_auroc,
            &expected["pixel_auroc"],
        );
        close(
            &format!("{name} AU-PRO"),
            by_max.pro_auc,
            &expected["pro_auc_0.3"],
        );
        if name.starts_with("mvtec") {
            close(
                &format!("{name} image AUROC (max)"),
                by_max.image_auroc,
                &expected["image_auroc_max"],
            );
            let by_top = evaluate(
                name,
                &samples,
                &EvalOptions {
                    image_score: ImageScore::Top100,
                    ..Default::default()
                },
            )
            .unwrap();
            close(
                &format!("{name} image AUROC (top100)"),
                by_top.image_auroc,
                &expected["image_auroc_top100"],
            );
            assert!(by_max.spro_auc.is_none());
        } else {
            let spro = by_max.spro_auc.as_ref().expect("LOCO cases have sPRO");
            for (limit, per_type) in expected["spro_auc"].as_object().unwrap() {
                for (kind, value) in per_type.as_object().unwrap() {
                    close(
                        &format!("{name} AU-sPRO {kind} @ {limit}"),
                        spro[limit][kind],
                        value,
                    );
                }
                let mean = (per_type["logical"].as_f64().unwrap()
                    + per_type["structural"].as_f64().unwrap())
                    / 2.0;
                close(
                    &format!("{name} AU-sPRO mean @ {limit}"),
                    spro[limit]["mean"],
                    &Value::from(mean),
                );
            }
            for (kind, value) in expected["image_auroc_max"].as_object().unwrap() {
                close(
                    &format!("{name} image AUROC {kind}"),
                    by_max.image_auroc_by_type[&format!("image_auroc_{kind}")],
                    value,
                );
            }
        }
    }
}
