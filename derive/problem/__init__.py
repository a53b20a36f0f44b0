"""What a report is about: the data (built-in sets, CSV, inline), the model and loss
chosen, the initial values, the dtype and the training settings, validated once into an
immutable Problem; and the z-scores of --standardize.

May import: models, common.
"""
