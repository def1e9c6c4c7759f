//! Small PRO / sPRO / AUROC cases computed by hand (the curves are written out in comments).

use std::path::PathBuf;

use slsg::data::{DefectSpec, GroundTruth, GroundTruthRegion};
use slsg::metrics::{
    CurvePoints, EvalOptions, EvalSample, PRO_LIMIT, evaluate, evaluate_with_figures, trapezoid,
};

fn spec(name: &str, threshold: f64, relative: bool) -> DefectSpec {
    DefectSpec {
        defect_name: name.into(),
        pixel_value: 255,
        saturation_threshold: threshold,
        relative_saturation: relative,
    }
}

fn region(pixels: &[u32], defect: Option<DefectSpec>) -> GroundTruthRegion {
    GroundTruthRegion {
        source: PathBuf::from("hand"),
        pixels: pixels.to_vec(),
        defect,
    }
}

fn sample(kind: &str, width: u32, map: &[f32], regions: Vec<GroundTruthRegion>) -> EvalSample {
    EvalSample {
        name: format!("{kind} sample"),
        kind: kind.into(),
        anomalous: !regions.is_empty(),
        ground_truth: GroundTruth {
            width,
            height: 1,
            regions,
        },
        map: map.to_vec(),
    }
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what} missing"));
    assert!(
        (actual - expected).abs() < 1e-12,
        "{what}: {actual} ≠ {expected}"
    );
}

/// Region of 4 pixels scored 0.9 0.8 0.7 0.2; defect-free pixels 0.6 0.1 and a good image 0.5 0.3.
/// Points (score ≥ t): TP 1 2 3 3 3 3 4 4, FP 0 0 0 1 2 3 3 4 of 4.
/// Saturation 4 (relative 1.0, or absolute 5 capped at the area): curve (0,¼)(0,½)(0,¾)(¼,¾)…(¾,¾)(¾,1)(1,1):
/// area to FPR 1 = ¾·¾ + ¼ = 0.8125; to 0.3 = 0.225 / 0.3 = 0.75. Saturation 2 (relative 0.5):
/// sPRO reaches 1 at FPR 0, so 1.0 at every limit.
fn saturation_case(defect: DefectSpec) -> Vec<EvalSample> {
    vec![
        sample("good", 2, &[0.5, 0.3], vec![]),
        sample(
            "logical_anomalies",
            6,
            &[0.9, 0.8, 0.7, 0.2, 0.6, 0.1],
            vec![region(&[0, 1, 2, 3], Some(defect))],
        ),
    ]
}

#[test]
fn relative_and_absolute_saturation() {
    for (defect, at_1, at_03) in [
        (spec("full", 1.0, true), 0.8125, 0.75),
        (spec("capped", 5.0, false), 0.8125, 0.75),
        (spec("half", 0.5, true), 1.0, 1.0),
        (spec("two", 2.0, false), 1.0, 1.0),
    ] {
        let name = defect.defect_name.clone();
        let e = evaluate("hand", &saturation_case(defect), &EvalOptions::default()).unwrap();
        let spro = e.spro_auc.as_ref().unwrap();
        assert_close(spro["1.0"]["logical"], at_1, &format!("{name} sPRO@1.0"));
        assert_close(spro["0.3"]["logical"], at_03, &format!("{name} sPRO@0.3"));
        assert_close(spro["0.3"]["mean"], at_03, &format!("{name} mean"));
        // The region is one connected component: PRO is sPRO with saturation = area.
        assert_close(e.pro_auc, 0.75, &format!("{name} PRO"));
        // Positives 0.9 0.8 0.7 0.2 against negatives 0.6 0.1 0.5 0.3: 13 of 16 pairs ordered.
        assert_close(e.pixel_auroc, 13.0 / 16.0, &format!("{name} pixel AUROC"));
        assert_close(e.image_auroc, 1.0, &format!("{name} image AUROC"));
    }
}

/// One LOCO image with two regions of different types: A (relative 1.0) scored 0.9 0.1, B
/// (absolute 1) scored 0.2 0.3; defect-free 0.5 0.0, plus a good image scored 0.0.
/// Points: 0.9 → A ½, B 0 (mean ¼, FPR 0); 0.5 → FPR ⅓; 0.3 → B 1 (mean ¾); 0.1 → A 1 (mean 1);
/// 0.0 → FPR 1. Area to 1.0 = ¼·⅓ + 1·⅔ = 0.75; to 0.3 = ¼.
#[test]
fn several_regions_of_different_types_in_one_image() {
    let samples = vec![
        sample("good", 1, &[0.0], vec![]),
        sample(
            "logical_anomalies",
            6,
            &[0.9, 0.1, 0.2, 0.3, 0.5, 0.0],
            vec![
                region(&[0, 1], Some(spec("a", 1.0, true))),
                region(&[2, 3], Some(spec("b", 1.0, false))),
            ],
        ),
    ];
    let e = evaluate("hand", &samples, &EvalOptions::default()).unwrap();
    let spro = e.spro_auc.as_ref().unwrap();
    assert_close(spro["1.0"]["logical"], 0.75, "sPRO@1.0");
    assert_close(spro["0.3"]["logical"], 0.25, "sPRO@0.3");
    assert_eq!(
        spro.keys().collect::<Vec<_>>(),
        ["0.01", "0.05", "0.1", "0.3", "1.0"]
    );
}

/// The curves kept for drawing are the ones the metrics integrate: each area is its metric.
#[test]
fn the_drawn_curves_integrate_to_the_metrics() {
    let area = |curve: &Option<CurvePoints>, limit: Option<f64>| {
        let curve = curve.as_ref().expect("a curve");
        trapezoid(&curve.x, &curve.y, limit) / limit.unwrap_or(1.0)
    };
    for samples in [
        saturation_case(spec("full", 1.0, true)),
        saturation_case(spec("half", 0.5, true)),
    ] {
        let (e, figures) =
            evaluate_with_figures("hand", &samples, &EvalOptions::default()).unwrap();
        assert_close(
            Some(area(&figures.image_roc, None)),
            e.image_auroc.unwrap(),
            "image ROC",
        );
        assert_close(
            Some(area(&figures.pixel_roc, None)),
            e.pixel_auroc.unwrap(),
            "pixel ROC",
        );
        assert_close(
            Some(area(&figures.pro, Some(PRO_LIMIT))),
            e.pro_auc.unwrap(),
            "PRO",
        );
        let logical = figures.spro.get("logical").cloned();
        let spro = e.spro_auc.as_ref().unwrap();
        assert_close(
            Some(area(&logical, None)),
            spro["1.0"]["logical"].unwrap(),
            "sPRO",
        );
        assert_eq!(figures.spro.len(), 1, "one curve per anomaly type");
        assert!(
            figures
                .pro
                .as_ref()
                .unwrap()
                .x
                .iter()
                .all(|&x| x <= PRO_LIMIT)
        );
    }
}

#[test]
fn only_defect_free_images_give_no_metrics_and_no_panic() {
    let samples = vec![
        sample("good", 2, &[0.1, 0.2], vec![]),
        sample("good", 2, &[0.3, 0.3], vec![]),
    ];
    let e = evaluate("hand", &samples, &EvalOptions::default()).unwrap();
    assert_eq!(
        (e.image_auroc, e.pixel_auroc, e.pro_auc),
        (None, None, None)
    );
    assert!(e.spro_auc.is_none());
}

#[test]
fn constant_scores_are_chance() {
    let samples = vec![
        sample("good", 2, &[0.5, 0.5], vec![]),
        sample("crack", 3, &[0.5, 0.5, 0.5], vec![region(&[1], None)]),
    ];
    let e = evaluate("hand", &samples, &EvalOptions::default()).unwrap();
    assert_close(e.image_auroc, 0.5, "image AUROC");
    assert_close(e.pixel_auroc, 0.5, "pixel AUROC");
    // One point at (1, 1): the PRO curve is the diagonal, area to 0.3 is 0.045, normalised 0.15.
    assert_close(e.pro_auc, 0.15, "PRO");
}

#[test]
fn non_finite_maps_are_refused_naming_the_sample() {
    let mut samples = vec![
        sample("good", 2, &[0.1, 0.2], Vec::new()),
        sample("crack", 2, &[0.9, f32::NAN], vec![region(&[1], None)]),
    ];
    let err = evaluate("hand", &samples, &EvalOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("crack sample") && err.contains("NaN") && err.contains("(1, 0)"),
        "{err}"
    );
    samples[1].map[1] = f32::INFINITY;
    assert!(evaluate("hand", &samples, &EvalOptions::default()).is_err());
}

#[test]
fn missing_metrics_and_empty_masks_are_reported() {
    let samples = vec![
        sample("good", 2, &[0.1, 0.2], Vec::new()),
        sample("crack", 2, &[0.9, 0.3], vec![region(&[], None)]),
    ];
    let e = evaluate("hand", &samples, &EvalOptions::default()).unwrap();
    assert!(e.pixel_auroc.is_none());
    assert!(
        e.warnings
            .iter()
            .any(|w| w.contains("crack sample") && w.contains("no pixel")),
        "{:?}",
        e.warnings
    );
    assert!(
        e.warnings.iter().any(|w| w.contains("pixel AUROC")),
        "{:?}",
        e.warnings
    );
}
