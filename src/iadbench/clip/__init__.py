"""CLIP building blocks several kinds share: encoders (both towers), prompts as data, the cached
outputs, the two-class scoring. The maths only one kind uses lives in that kind's folder
(``iadbench.methods.winclip``, ``iadbench.methods.crane``, ``iadbench.methods.fe_clip``).

Submodules are imported by name: :mod:`.prompts` and :mod:`.token_paths` are torch-free (the rules
read them while building the DAG); :mod:`.encoder`, :mod:`.outputs` and :mod:`.scoring` need torch.
"""
