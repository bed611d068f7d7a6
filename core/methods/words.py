"""`words`: the catalog's own words (titles and descriptions), as TF-IDF of words and word pairs.

Titles carry the type and colour that photos blur ("Navy Blue Shirt"), and exact words and word
pairs keep them sharper than a sentence model does (docs/benchmarks.md, learnt methods). The
vocabulary and the word weights are fitted on this catalog the first time it is embedded with
`words` (a second or two), then reduced to at most DIM dimensions (truncated SVD, i.e. latent
semantic analysis) so every item is one dense vector like the other methods'. The fit is kept in
the catalog's trained folder as plain arrays (no pickle); its digest is the method's version, so
a new fit makes the old vectors outdated. New items are embedded with the kept vocabulary; words it
does not know are ignored. Delete the folder and embed again to fit anew.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from core.catalog.db import Catalog
from core.catalog.vectors import item_text
from core.files.atomic import atomic_path
from core.methods.base import TextExtractor
from core.methods.spec import MethodSpec
from core.methods.weights import checkpoint_version

DIM = 512
NGRAMS = (1, 2)


def fit_path(catalog: Catalog) -> Path:
    return catalog.trained_dir / "words" / "tfidf.npz"


def version(catalog: Catalog | None) -> str:
    """The fit's digest as a version, as the autoencoder's checkpoint's ("1" before the first fit)."""
    path = fit_path(catalog) if catalog is not None else None
    if path is None or not path.exists():
        return "1"
    return checkpoint_version(path.read_bytes())


def _vectorizer(vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=NGRAMS, sublinear_tf=True, vocabulary=vocabulary, dtype=np.float32)


def fit(texts: list[str]) -> dict[str, np.ndarray]:
    """The vocabulary, its inverse document frequencies and the SVD basis fitted on `texts`."""
    vectorizer = _vectorizer()
    counts = vectorizer.fit_transform(texts)
    dims = max(1, min(DIM, counts.shape[1] - 1, counts.shape[0] - 1))
    svd = TruncatedSVD(dims, random_state=0).fit(counts)
    return {
        "terms": np.array(vectorizer.get_feature_names_out(), dtype=str),
        "idf": vectorizer.idf_.astype(np.float32),
        "basis": svd.components_.astype(np.float32),
    }


def catalog_texts(catalog: Catalog) -> list[str]:
    rows = catalog.execute("SELECT title, description FROM items ORDER BY id")
    return [text for title, description in rows if (text := item_text(title, description)).strip()]


class Words(TextExtractor):
    """TF-IDF of words and word pairs, projected on the catalog's SVD basis."""

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        if catalog is None:
            raise ValueError("words is fitted on a catalog's texts: open it with a catalog")
        path = fit_path(catalog)
        if not path.exists():
            texts = catalog_texts(catalog)
            if len(texts) < 3:
                raise ValueError("words needs at least 3 items with a title or description to learn from")
            with atomic_path(path, ".npz") as staged:
                np.savez(staged, **fit(texts))  # type: ignore[arg-type]  # numpy: **arrays might hold allow_pickle
        with np.load(path, allow_pickle=False) as saved:
            terms, idf, self.basis = saved["terms"], saved["idf"], saved["basis"]
        self.vectorizer = _vectorizer({term: n for n, term in enumerate(terms.tolist())})
        self.vectorizer.idf_ = idf
        self.spec = dataclasses.replace(spec, version=version(catalog), dim=len(self.basis))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Each text's TF-IDF projected on the basis (a text without a known word: zeros)."""
        return np.asarray(self.vectorizer.transform(texts) @ self.basis.T, dtype=np.float32)
