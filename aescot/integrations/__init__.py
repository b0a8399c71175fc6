"""Plug-ins in the shapes RL trainers load by file path (verl, EasyR1); each scores with :mod:`aescot.rewards`.

Print a plug-in's path for a trainer's config with ``python -m aescot.integrations verl`` (or ``easyr1``).
They import only the standard library, Pillow and aescot's light scoring modules, so a trainer's
environment needs ``pip install --no-deps aescot`` (or the repository on ``PYTHONPATH``), nothing more.
"""
