//! Evaluation exactly as the benchmarks define it: image and pixel AUROC (ties as
//! scikit-learn), AU-PRO to FPR 0.3, MVTec LOCO's AU-sPRO, F1-max, and the curves behind them; anomaly maps as float TIFF in
//! the official layout. Reads ground truth through `data`; must not know about models.

mod curve;
mod evaluate;
mod f1;
mod figures;
mod image_score;
mod maps;
mod pixel;
mod pro;
mod roc;
mod spro;
mod thresholds;

pub use curve::trapezoid;
pub use evaluate::{
    EvalError, EvalOptions, EvalSample, Evaluation, F1Max, KindMetrics, PRO_LIMIT, ThresholdInfo,
    evaluate, evaluate_folder, evaluate_with_figures, load_samples, type_name,
};
pub use f1::f1_max;
pub use figures::{CurvePoints, Figures, MAX_CURVE_POINTS};
pub use image_score::ImageScore;
pub use maps::{
    AnomalyMap, MapError, MapsInfo, encode_tiff, find_map, map_path, read_tiff, write_tiff,
};
pub use pixel::PixelStats;
pub use pro::pro_auc;
pub use roc::{RocCurve, auroc, roc_curve};
pub use spro::{SPRO_LIMITS, limit_key, spro_auc};
pub use thresholds::ThresholdGrid;
