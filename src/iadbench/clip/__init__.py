"""CLIP zero-/few-shot building blocks: encoders (both towers), prompts as data, WinCLIP maths.

Submodules are imported by name: :mod:`.prompts` is torch-free (the rules read it while building
the DAG); :mod:`.encoder` and :mod:`.winclip` need torch.
"""
