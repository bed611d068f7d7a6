"""Text search over titles and descriptions: all-MiniLM-L6-v2, shipped in a PyPI package."""

from __future__ import annotations

import numpy as np
import torch

from core.catalog.db import Catalog
from core.methods import devices
from core.methods.base import TextExtractor
from core.methods.spec import MethodSpec
from core.methods.torch_utils import set_threads
from core.methods.weights import minilm_folder


class MiniLM(TextExtractor):
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        from transformers import AutoModel, AutoTokenizer

        super().__init__(spec, catalog)
        set_threads()
        self.placement = devices.current()
        self.tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
        self.model = self.placement.prepare(AutoModel.from_pretrained(minilm_folder(), local_files_only=True))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled token embeddings (the sentence-transformers recipe)."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt").to(
            self.placement.device
        )
        with torch.inference_mode(), self.placement.autocast():
            tokens = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return ((tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().cpu().numpy()
