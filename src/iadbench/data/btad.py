"""BTAD (beanTech Anomaly Detection) layout, as unpacked: ``BTech_Dataset_transformed/``.

Products ``01``, ``02``, ``03`` each hold ``train/ok``, ``test/ok``, ``test/ko`` and
``ground_truth/ko``: the MVTec AD tree with ``ok`` as the normal folder. Images are ``.bmp`` or
``.png`` depending on the product, and each mask has its image's stem with either extension
(``01``: bmp images, png masks; ``03``: bmp both), so masks are matched by stem alone.
Anomalous samples get defect type ``ko``; normal ones ``good`` like every other layout.
"""

from __future__ import annotations

from iadbench.data.mvtec import TreeLayout

BTAD = TreeLayout(normal_dir="ok", default_mask_suffix="")
