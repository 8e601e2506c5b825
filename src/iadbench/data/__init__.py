"""Dataset readers (MVTec AD layout, manifests, images) and the embedded demo dataset generator."""
