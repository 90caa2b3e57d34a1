"""Use a trained run: embed images, build and search a saved faiss index, export the model.

Load a run directory (``checkpoints/best.pt`` by default, ``"last"`` on request) with its own
config, model and eval transform (resize, center crop, ``eval.flip``, ``eval.feature``)::

    from dml.inference import load_run, embed_folder, build_index, open_index, search

    run = load_run("outputs/runs/<...>/<timestamp>")                 # device="auto"
    found, embedded = embed_folder(run, "my_images")       # JPEG/PNG, recursively
    embedded.embeddings                                    # (n, d) float32, L2-normalised
    build_index(run, "my_images", "my_index")              # add_to_index(...) appends
    index = open_index("my_index")
    ranked = search(index, embedded.embeddings[:1], k=8)   # ranked.paths, .scores, .labels

Public API:

- ``load_run(run_dir, checkpoint="best", device="auto", feature=None) -> LoadedRun``
- ``list_images(folder_or_file) -> ImageList``; ``folder_classes(root, paths)``
- ``embed_images(run, paths, batch_size=None, ...) -> Embedded``;
  ``embed_folder(run, folder) -> (ImageList, Embedded)``
- ``build_index(run, folder, out) -> IndexUpdate``; ``add_to_index(run, folder, index_dir)``;
  ``open_index(index_dir) -> ImageIndex``; ``check_same_model(index, run)``
- ``search(index, queries, k) -> Ranked``; ``run_for_index(index, run_dir=None)``;
  ``evaluate_index(index, ks=None)`` (Recall@K, MAP@R by ``dml.evaluation``)
- ``export_model(run, "torchscript" | "onnx", out) -> metadata``; ``read_metadata(path)``;
  ``input_transform(run)`` (the exported model's input from a PIL image)

Unreadable files are skipped with a ``warning: skipped <path>: <reason>`` line each on
stderr; user mistakes raise ``dml.errors.DmlError`` with a one-line message. The command-line
faces are ``scripts/index.py``, ``scripts/search.py`` and ``scripts/export.py``; see
docs/inference.md for the files of an index directory and the export contract.
"""

from dml.inference.embed import (
    Embedded,
    ImageList,
    embed_folder,
    embed_images,
    folder_classes,
    list_images,
)
from dml.inference.export import export_model, input_transform, read_metadata
from dml.inference.index import (
    ImageIndex,
    IndexUpdate,
    add_to_index,
    build_index,
    check_same_model,
    index_bytes,
    is_index,
    open_index,
)
from dml.inference.model import LoadedRun, load_run
from dml.inference.search import Ranked, evaluate_index, run_for_index, search

__all__ = [
    "Embedded",
    "ImageIndex",
    "ImageList",
    "IndexUpdate",
    "LoadedRun",
    "Ranked",
    "add_to_index",
    "build_index",
    "check_same_model",
    "embed_folder",
    "embed_images",
    "evaluate_index",
    "export_model",
    "folder_classes",
    "index_bytes",
    "input_transform",
    "is_index",
    "list_images",
    "load_run",
    "open_index",
    "read_metadata",
    "run_for_index",
    "search",
]
