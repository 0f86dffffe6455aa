"""``harness search``: find the person of an LR crop in a folder of HR gallery crops.

The job the whole cascade exists for, with a run folder or an export folder
(:mod:`harness.export` gives both as an :class:`~harness.export.Embedder`):

* the gallery folder's images (recursively, by suffix) are embedded through the gallery
  path at the run's HR size, resized as the run's loader resized its gallery; features are
  cached by each file's sha256 in one file per model (``gallery-<model>.pt`` in the cache
  folder), so a second search over the same folder embeds nothing again, and a changed or
  added file is the only one embedded;
* each query, an LR crop of any size, goes through the run's query path at the protocol
  ratio that fits it (:func:`harness.export.fit_query`);
* matches are ranked by the run's metric (:func:`harness.metrics.pairwise_distance`: cosine,
  or squared Euclidean), ties in gallery order;
* ``results.json`` holds every query's ranked matches with distances; ``index.html`` shows
  the query and its top K with their distances. The page links to the images by relative
  paths and copies none of them, so a search over a dataset whose images may not be
  redistributed (CUHK03) writes no image of it.

faiss: not installed here, so ranking is an exact scan in torch. :func:`rank` keeps a hook:
when ``import faiss`` works and the gallery holds at least :data:`FAISS_MIN_GALLERY`
images, an exact ``IndexFlatIP`` (cosine, on L2-normalised features) or ``IndexFlatL2``
(squared Euclidean) index ranks instead, with the same distances. The threshold is a
placeholder, not a measured crossover: with faiss absent it could not be measured here.
"""

from __future__ import annotations

import hashlib
import html
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.export import Embedder, load_image, sha256_file
from harness.io import atomic_torch_save, atomic_write_json, atomic_write_text
from harness.metrics import pairwise_distance

__all__ = [
    "FAISS_MIN_GALLERY",
    "IMAGE_SUFFIXES",
    "GalleryFeatures",
    "gallery_features",
    "list_gallery",
    "rank",
    "search",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"})
#: gallery size from which an installed faiss ranks instead of torch (unmeasured: see above)
FAISS_MIN_GALLERY = 100_000
RESULTS, PAGE = "results.json", "index.html"


def list_gallery(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (by suffix), in a stable order; none is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"gallery folder {folder} does not exist or is not a folder")
    paths = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise HarnessError(
            f"gallery folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return paths


@dataclass
class GalleryFeatures:
    paths: list[Path]
    features: np.ndarray  # N x D float32, row i is paths[i]
    embedded: int  # images embedded by this call
    cached: int  # images whose features came from the cache


def _cache_file(cache_dir: Path, fingerprint: str) -> Path:
    return cache_dir / f"gallery-{hashlib.sha256(fingerprint.encode()).hexdigest()[:16]}.pt"


def _read_cache(path: Path, fingerprint: str) -> dict[str, np.ndarray]:
    """sha256 -> feature from a cache file; a missing, torn or foreign file is an empty cache."""
    if not path.is_file():
        return {}
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn by a crash, or not ours: embed again rather than fail
        return {}
    if not isinstance(doc, dict) or doc.get("fingerprint") != fingerprint:
        return {}
    features = doc["features"].numpy()
    return {h: features[i] for i, h in enumerate(doc["sha256"])}


def gallery_features(
    embedder: Embedder, paths: Sequence[Path], cache_dir: Path | None = None
) -> GalleryFeatures:
    """Features of ``paths`` through the gallery path, read from and added to the cache."""
    hashes = [sha256_file(p) for p in paths]
    cache_path = _cache_file(cache_dir, embedder.fingerprint) if cache_dir else None
    cache = _read_cache(cache_path, embedder.fingerprint) if cache_path else {}
    todo: dict[str, Path] = {}
    for h, p in zip(hashes, paths, strict=True):
        if h not in cache and h not in todo:
            todo[h] = p
    if todo:
        images = [load_image(p, embedder.hr_size) for p in todo.values()]
        feats = embedder.embed_gallery(images)
        cache.update(zip(todo, feats, strict=True))
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            keys = sorted(cache)
            atomic_torch_save(
                {
                    "fingerprint": embedder.fingerprint,
                    "sha256": keys,
                    "features": torch.from_numpy(np.stack([cache[k] for k in keys])),
                },
                cache_path,
            )
    features = np.stack([cache[h] for h in hashes]).astype(np.float32)
    embedded = sum(1 for h in hashes if h in todo)
    return GalleryFeatures(list(paths), features, embedded, len(paths) - embedded)


def _faiss() -> Any | None:
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        return None
    return faiss


def rank(
    query: np.ndarray,
    gallery: np.ndarray,
    metric: str,
    top: int,
    faiss_min: int = FAISS_MIN_GALLERY,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` nearest gallery rows of each query row: (indices, distances), Q x K each.

    Distances are the evaluation's (:func:`harness.metrics.pairwise_distance`); ties keep
    gallery order. faiss (where installed, from ``faiss_min`` gallery rows) gives the same
    distances through an exact index.
    """
    k = max(1, min(int(top), len(gallery)))
    faiss = _faiss() if len(gallery) >= faiss_min else None
    if faiss is not None:
        q = np.ascontiguousarray(query, dtype=np.float32)
        g = np.ascontiguousarray(gallery, dtype=np.float32)
        if metric == "cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
            index = faiss.IndexFlatIP(g.shape[1])
            index.add(g)
            sims, idx = index.search(q, k)
            return idx.astype(np.int64), (1.0 - sims).astype(np.float32)
        index = faiss.IndexFlatL2(g.shape[1])
        index.add(g)
        dist, idx = index.search(q, k)
        return idx.astype(np.int64), dist.astype(np.float32)
    dist = pairwise_distance(
        torch.from_numpy(query).float(), torch.from_numpy(gallery).float(), metric
    )
    values, order = torch.sort(dist, dim=1, stable=True)
    return order[:, :k].numpy(), values[:, :k].numpy()


def _href(path: Path, out_dir: Path) -> str:
    """A relative, URL-quoted link from the page in ``out_dir`` to ``path``."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    return urllib.parse.quote(Path(rel).as_posix())


def _page(doc: dict[str, Any], out_dir: Path) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>harness search</title><style>",
        "body{font:14px sans-serif;margin:1em}section{margin:1.5em 0}",
        "ol{display:flex;flex-wrap:wrap;gap:8px;list-style:none;padding:0;margin:0}",
        "figure{margin:0;text-align:center;font-size:12px}",
        "img{height:128px;image-rendering:pixelated;border:1px solid #999}",
        ".query img{border:2px solid #06c}.row{display:flex;gap:16px;align-items:flex-start}",
        "</style></head><body>",
        f"<h1>Search with {e(doc['model'])}</h1>",
        f"<p>Gallery {e(doc['gallery'])}: {doc['gallery_size']} images "
        f"({doc['embedded']} embedded, {doc['cached']} from the cache); metric "
        f"{e(doc['metric'])}, {e(str(doc['query_path']))} query path; top {doc['top']}.</p>",
    ]
    for q in doc["queries"]:
        size = "x".join(str(v) for v in q["size"])
        parts.append(
            "<section><div class='row'><figure class='query'>"
            f"<img src='{e(_href(Path(q['path']), out_dir))}' alt='query'>"
            f"<figcaption>{e(q['image'])}<br>{e(size)}, as x{e(str(q['ratio']))}"
            "</figcaption></figure><ol>"
        )
        for m in q["matches"]:
            parts.append(
                f"<li><figure><img src='{e(_href(Path(m['path']), out_dir))}' "
                f"alt='rank {m['rank']}'><figcaption>{m['rank']}. {e(m['image'])}<br>"
                f"d={m['distance']:.4f}</figcaption></figure></li>"
            )
        parts.append("</ol></div></section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def search(
    embedder: Embedder,
    queries: Sequence[str | Path],
    gallery_dir: str | Path,
    out_dir: str | Path,
    top: int = 10,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Rank ``gallery_dir``'s images for each query; write ``results.json`` and ``index.html``
    to ``out_dir`` (gallery features cached in ``cache_dir``, default ``out_dir/cache``)."""
    if top < 1:
        raise HarnessError(f"--top must be at least 1, got {top}")
    if not queries:
        raise HarnessError("no query image given (--query IMG)")
    images = [load_image(q) for q in queries]  # an unreadable one stops here, named
    paths = list_gallery(gallery_dir)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    gallery = gallery_features(embedder, paths, cache)
    embedded = [embedder.embed_query(image) for image in images]
    query_f = np.concatenate([f for _, f in embedded])
    order, dist = rank(query_f, gallery.features, embedder.metric, top)
    root = Path(gallery_dir)
    results = []
    for i, q in enumerate(queries):
        matches = [
            {
                "rank": k + 1,
                "image": paths[j].relative_to(root).as_posix(),
                "path": str(paths[j]),
                "distance": float(dist[i, k]),
            }
            for k, j in enumerate(order[i])
        ]
        results.append(
            {
                "image": Path(q).name,
                "path": str(q),
                "size": [int(images[i].shape[0]), int(images[i].shape[1])],
                "ratio": embedded[i][0],
                "matches": matches,
            }
        )
    doc = {
        "model": embedder.source,
        "query_path": embedder.info.get("query_kind"),
        "metric": embedder.metric,
        "hr_size": list(embedder.hr_size),
        "gallery": str(gallery_dir),
        "gallery_size": len(paths),
        "embedded": gallery.embedded,
        "cached": gallery.cached,
        "top": int(order.shape[1]),
        "queries": results,
    }
    atomic_write_json(out / RESULTS, doc)
    atomic_write_text(out / PAGE, _page(doc, out))
    return doc
