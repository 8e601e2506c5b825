"""Multimodal weld-inspection kinds on cached per-modality embeddings (METHODS §6.2-6.3).

Models are plain ``nn.Module``s (tensors in, tensors out); the method classes beside them read
the embedding stores, fit on TRAIN normals, select on VAL and write the state.
"""
