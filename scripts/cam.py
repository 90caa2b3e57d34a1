"""Grad-CAM of every unit of a run's backbone, from initial-tune to the last epoch.

Usage: python scripts/cam.py <run_dir> [--images 4] [--out PNG]

Needs a run made with trainer.save_epoch_weights=true: it draws the weights after epoch 0's
first trial ("initial-tune", one LR for every unit) and after every accepted epoch
(<run_dir>/checkpoints/weights/). For N test images from different classes, each row of the
PNG (default <run_dir>/cam_units.png) is one (image, checkpoint) pair, labelled with the
checkpoint and its AutoLR sorting score: the image, then the Grad-CAM map at the output of
each unit, of the cosine between the image's retrieval feature and its class centroid (see
dml.diagnostics.cam). The supplement's Figure 3 (section F) is this kind of figure.
"""

from dml.diagnostics.cam import main

if __name__ == "__main__":
    raise SystemExit(main())
