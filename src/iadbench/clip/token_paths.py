"""Where a CLIP tap's patch tokens are read (torch-free: method parameters name them).

METHODS §0 ``projected`` (ln_post, then proj: AnomalyCLIP, Crane) and ``raw`` (the block's
residual stream: APRIL-GAN), plus ``ln_post`` (no proj), the space of the patch tokens open_clip
returns with ``output_tokens`` (anomalib's WinCLIP+ patch memory).
"""

TOKEN_PATHS = ("projected", "ln_post", "raw")
