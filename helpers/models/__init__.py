"""Model builders: plain functions that return a Keras model from a few arguments.

One module per family, imported by the notebooks that need it, e.g.
``from helpers.models import unet; model = unet.build_unet(...)``.
"""
