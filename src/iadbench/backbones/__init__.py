"""Backbone registry: config name -> library model, its preprocessing and its tap points.

Submodules are imported by name: :mod:`.registry` describes models without torch (the rules read
it while building the DAG); :mod:`.loader` and :mod:`.weights` build them.
"""
