//! `slsg synth`, `simulate` and `eval` end to end, and every bad-input case of the dataset
//! readers: each must exit non-zero with a message naming the file, never panic.

use std::path::Path;

use slsg::data::{Category, GroundTruth};
use slsg::metrics::{AnomalyMap, map_path, write_tiff};
use slsg_tests::{fails_with, ok, path, slsg, synthetic_data};

/// Maps that mark the ground truth (plus a little structure) so every metric is well defined.
fn write_oracle_maps(category: &Category, maps: &Path) {
    for test in &category.test {
        let gt = GroundTruth::read(test, category.defects.as_ref()).unwrap();
        let union = gt.union_mask();
        let values = union
            .as_bytes()
            .iter()
            .enumerate()
            .map(|(i, &d)| 0.8 * d as f32 + 0.1 * ((i * 7919 % 101) as f32 / 101.0))
            .collect();
        let map = AnomalyMap {
            width: gt.width,
            height: gt.height,
            values,
        };
        write_tiff(&map_path(maps, &category.name, &test.kind, test.id()), &map).unwrap();
    }
}

/// Sample `i` of a `slsg simulate` folder is labelled where it differs from `base` by the
/// default visible change, within the PNG's rounding; `fields` is its `samples.csv` row.
fn assert_labels_are_the_visible_change(
    out: &Path,
    i: usize,
    base: &image::RgbImage,
    fields: &[&str],
) {
    let simulated = image::open(out.join(format!("{i:03}_image.png")))
        .unwrap()
        .to_rgb8();
    let mask = image::open(out.join(format!("{i:03}_mask.png")))
        .unwrap()
        .to_luma8();
    let visible = slsg::simulate::MIN_VISIBLE_CHANGE as f32 * 255.0;
    let mut labelled = 0;
    for ((s, b), m) in simulated.pixels().zip(base.pixels()).zip(mask.pixels()) {
        let change = (0..3)
            .map(|c| (s.0[c] as f32 - b.0[c] as f32).abs())
            .fold(0.0, f32::max);
        if m.0[0] > 127 {
            labelled += 1;
            assert!(
                change >= visible - 1.0,
                "sample {i}: labelled, changed {change}"
            );
        } else {
            assert!(
                change < visible + 1.0,
                "sample {i}: unlabelled, changed {change}"
            );
        }
    }
    assert_eq!(fields[5], labelled.to_string(), "sample {i}: mask_area");
    assert!(fields[7].parse::<u32>().unwrap() >= 1, "sample {i}: draws");
}

#[test]
fn synth_simulate_and_eval_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let out = dir.path().join("sim");
    let o = ok(slsg(
        &[
            "simulate",
            "--dataset",
            data.to_str().unwrap(),
            "--category",
            "tray",
            "--out",
            out.to_str().unwrap(),
            "--count",
            "8",
            "--size",
            "64",
        ],
        &[],
    ));
    assert!(o.contains("wrote 8 samples"));
    for name in [
        "000_image.png",
        "007_mask.png",
        "contact_sheet.png",
        "samples.csv",
    ] {
        assert!(out.join(name).is_file(), "{name}");
    }
    let csv = std::fs::read_to_string(out.join("samples.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9);

    // By default anomalies land on an object, not on its background, and samples.csv says
    // where each one landed truly; a texture is used whole. A pixel is labelled anomalous
    // exactly where the simulated image differs visibly from its normal image, and
    // samples.csv counts those pixels.
    for (category, rule) in [
        ("washer", "otsu: the object"),
        ("weave", "none: the whole image"),
    ] {
        let out = dir.path().join(format!("sim-{category}"));
        let printed = ok(slsg(
            &[
                "simulate",
                "--dataset",
                path(&data),
                "--category",
                category,
                "--out",
                path(&out),
                "--count",
                "8",
                "--size",
                "64",
            ],
            &[],
        ));
        assert!(printed.contains(rule), "{category}: {printed}");
        let csv = std::fs::read_to_string(out.join("samples.csv")).unwrap();
        let mut inside = 0;
        assert!(csv.starts_with(
            "index,branch,base_image,source,delta,mask_area,inside_foreground,draws\n"
        ));
        for (i, line) in csv.lines().skip(1).enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            let base = image::open(data.join(format!("{category}/train/good/{}", fields[2])))
                .unwrap()
                .to_rgb8();
            assert_labels_are_the_visible_change(&out, i, &base, &fields);
            if fields[6] != "true" {
                continue;
            }
            inside += 1;
            let foreground = slsg::simulate::foreground_mask(
                &base,
                &slsg::simulate::ForegroundConfig::Otsu {
                    polarity: slsg::simulate::Polarity::Auto,
                },
            );
            let mask = image::open(out.join(format!("{i:03}_mask.png")))
                .unwrap()
                .to_luma8();
            let (mut on, mut off) = (0, 0);
            for (x, y, p) in mask.enumerate_pixels() {
                if p.0[0] > 127 {
                    if foreground.get(x, y) {
                        on += 1
                    } else {
                        off += 1
                    }
                }
            }
            if category == "washer" {
                assert!(
                    off * 20 <= on + off,
                    "{category} sample {i}: {off} of {} mask pixels off the object",
                    on + off
                );
            }
        }
        assert!(inside >= 6, "{category}: {csv}");
    }

    for name in ["weave", "tray"] {
        let category = Category::open(&data, name).unwrap();
        let maps = dir.path().join("maps");
        write_oracle_maps(&category, &maps);
        let json = dir.path().join(format!("{name}.json"));
        let o = ok(slsg(
            &[
                "eval",
                "--dataset",
                data.to_str().unwrap(),
                "--category",
                name,
                "--maps",
                maps.to_str().unwrap(),
                "--json",
                json.to_str().unwrap(),
            ],
            &[],
        ));
        assert!(o.contains("image AUROC"));
        assert!(
            o.contains("image score `max`: the official evaluation's"),
            "maps from elsewhere are scored as the official evaluation does: {o}"
        );
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(metrics["image_auroc"], 1.0, "{name}");
        assert!(metrics["pixel_auroc"].as_f64().unwrap() > 0.99);
        assert!(metrics["pro_auc_0.3"].as_f64().unwrap() > 0.9);
        if name == "tray" {
            let spro = &metrics["spro_auc"];
            for limit in ["0.01", "0.05", "0.1", "0.3", "1.0"] {
                for kind in ["logical", "structural", "mean"] {
                    assert!(spro[limit][kind].as_f64().unwrap() > 0.9, "{limit} {kind}");
                }
            }
            assert_eq!(metrics["image_auroc_logical"], 1.0);
            assert_eq!(metrics["image_auroc_structural"], 1.0);
        } else {
            assert!(metrics.get("spro_auc").is_none());
        }
    }
}

#[test]
fn eval_refuses_missing_corrupt_and_misfit_maps() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let category = Category::open(&data, "washer").unwrap();
    let maps = dir.path().join("maps");
    write_oracle_maps(&category, &maps);
    let eval = |maps: &Path| {
        slsg(
            &[
                "eval",
                "--dataset",
                data.to_str().unwrap(),
                "--category",
                "washer",
                "--maps",
                maps.to_str().unwrap(),
            ],
            &[],
        )
    };

    let description = maps.join("maps.json");
    std::fs::write(&description, r#"{"image_score": "median"}"#).unwrap();
    fails_with(eval(&maps), &[description.to_str().unwrap(), "median"]);
    std::fs::remove_file(&description).unwrap();

    let first = &category.test[0];
    let path = map_path(&maps, "washer", &first.kind, first.id());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(eval(&maps), &[path.to_str().unwrap()]);

    write_tiff(
        &path,
        &AnomalyMap {
            width: 10,
            height: 10,
            values: vec![0.0; 100],
        },
    )
    .unwrap();
    fails_with(eval(&maps), &[path.to_str().unwrap(), "10×10"]);

    std::fs::remove_file(&path).unwrap();
    fails_with(
        eval(&maps),
        &[
            "no anomaly map",
            first.path.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );

    fails_with(
        slsg(
            &[
                "eval",
                "--dataset",
                data.to_str().unwrap(),
                "--category",
                "nonexistent",
                "--maps",
                maps.to_str().unwrap(),
            ],
            &[],
        ),
        &["nonexistent", "does not exist", "washer"],
    );
}

#[test]
fn bad_datasets_name_the_offending_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let out = dir.path().join("out");
    let simulate = |category: &str| {
        slsg(
            &[
                "simulate",
                "--dataset",
                data.to_str().unwrap(),
                "--category",
                category,
                "--out",
                out.to_str().unwrap(),
                "--count",
                "2",
                "--size",
                "64",
            ],
            &[],
        )
    };
    let maps = dir.path().join("maps");
    let eval = |category: &str| {
        slsg(
            &[
                "eval",
                "--dataset",
                data.to_str().unwrap(),
                "--category",
                category,
                "--maps",
                maps.to_str().unwrap(),
            ],
            &[],
        )
    };

    // Missing mask.
    let mask = data.join("weave/ground_truth/hole/000_mask.png");
    std::fs::remove_file(&mask).unwrap();
    fails_with(
        eval("weave"),
        &["missing ground-truth mask", "weave/test/hole/000.png"],
    );

    // Mask of another size than its image.
    let category = Category::open(&data, "washer").unwrap();
    write_oracle_maps(&category, &maps);
    let mask = data.join("washer/ground_truth/crack/001_mask.png");
    image::GrayImage::new(10, 12).save(&mask).unwrap();
    fails_with(
        eval("washer"),
        &["washer/ground_truth/crack/001_mask.png", "10×12", "64×64"],
    );

    // Truncated and unreadable training images.
    let image = data.join("tray/train/good/003.png");
    let bytes = std::fs::read(&image).unwrap();
    std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(simulate("tray"), &["tray/train/good/003.png", "unreadable"]);
    std::fs::write(&image, b"this is not an image").unwrap();
    fails_with(simulate("tray"), &["tray/train/good/003.png"]);

    // Empty train folder.
    for entry in std::fs::read_dir(data.join("washer/train/good")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    fails_with(
        simulate("washer"),
        &["washer/train/good", "no training images"],
    );

    // Unknown layout and unknown category.
    std::fs::create_dir_all(data.join("mystery/stuff")).unwrap();
    fails_with(simulate("mystery"), &["mystery", "unknown dataset layout"]);
    fails_with(simulate("nonexistent"), &["nonexistent", "does not exist"]);
}

#[test]
fn truncated_jpeg_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.jpg");
    let image = image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, 90])
    });
    image.save(&path).unwrap();
    let complete = std::fs::read(&path).unwrap();
    std::fs::write(&path, &complete[..complete.len() * 2 / 3]).unwrap();
    match slsg::data::read_rgb(&path) {
        Ok(_) => panic!("a truncated JPEG was decoded"),
        Err(e) => assert!(
            e.to_string().contains("cut.jpg") && e.to_string().contains("truncated"),
            "{e}"
        ),
    }
    std::fs::write(&path, &complete).unwrap();
    assert!(slsg::data::read_rgb(&path).is_ok());
}
