"""Two measurements behind docs/benchmarks.md, "Labels only where the image changed".

  python3 bench/simulation_labels.py change SIM_DIR TRAIN_DIR
      For each sample of `slsg simulate --out SIM_DIR` (its samples.csv and PNGs), the mean
      change inside the labelled mask against the normal image in TRAIN_DIR (the category's
      train/good folder, at the simulation's size), on each pixel's most changed channel in
      [0, 1], and the fraction of mask pixels changed by 0.05 or more.

  python3 bench/simulation_labels.py peaks MAPS_DIR
      For a folder of TIFF maps in the official layout (`<category>/test/<kind>/<id>.tiff`, as
      `slsg fit` and the demo's jobs write under `maps/`), the lowest, median and highest map
      maximum per kind.

Needs numpy, pillow and tifffile.
"""
import csv
import glob
import os
import signal
import sys

import numpy as np
from PIL import Image


def change(sim, train):
    with open(os.path.join(sim, "samples.csv")) as f:
        for row in csv.DictReader(f):
            i = int(row["index"])
            simulated = np.asarray(Image.open(f"{sim}/{i:03d}_image.png").convert("RGB")) / 255.0
            mask = np.asarray(Image.open(f"{sim}/{i:03d}_mask.png").convert("L")) > 127
            base = Image.open(os.path.join(train, row["base_image"])).convert("RGB")
            base = np.asarray(base.resize(simulated.shape[1::-1])) / 255.0
            d = np.abs(simulated - base).max(-1)
            if mask.any():
                print(f"{row['branch']:12} delta {row['delta']} mask {mask.sum():5d} px: "
                      f"mean change {d[mask].mean():.3f}, at least 0.05 on {(d[mask] >= 0.05).mean():.2f}")
            else:
                print(f"{row['branch']:12} delta {row['delta']} mask empty")


def peaks(maps):
    import tifffile
    for kind in sorted(glob.glob(os.path.join(maps, "*", "test", "*"))):
        values = [float(tifffile.imread(p).max()) for p in glob.glob(os.path.join(kind, "*.tiff"))]
        print(f"{os.path.basename(kind):12} {min(values):.3f} {np.median(values):.3f} {max(values):.3f}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) == 4 and sys.argv[1] == "change":
        change(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "peaks":
        peaks(sys.argv[2])
    else:
        sys.exit(__doc__)
