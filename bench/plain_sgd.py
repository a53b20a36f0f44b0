"""The baseline for the benchmark: the original script's training, written out plainly.

Two samples, W and b as float32 variables, ``tf.GradientTape`` and plain SGD
(learning rate 0.01) for 1000 eager steps, printing the gradients, the loss and the
parameters at every step. Nothing is checked and nothing is rendered.

    python bench/plain_sgd.py [--steps 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    inputs = np.array([3.3, 1.0])
    targets = np.array([1.7, 2.0])
    draw = np.random.RandomState(args.seed)
    weight = tf.Variable(draw.random_sample(), name="weight", dtype=tf.float32)
    bias = tf.Variable(draw.random_sample(), name="bias", dtype=tf.float32)
    sgd = tf.optimizers.SGD(0.01)

    for _ in range(args.steps):
        with tf.GradientTape() as tape:
            residual = weight * inputs + bias - targets
            loss = tf.reduce_mean(tf.square(residual))
        gradients = tape.gradient(loss, [weight, bias])
        print("\ngradient=", gradients, "\nloss=", loss, "\nW=", weight, "\nb= ", bias)
        sgd.apply_gradients(zip(gradients, [weight, bias], strict=True))


if __name__ == "__main__":
    main()
