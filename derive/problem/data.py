"""The samples a problem starts from: a Dataset as the user gave it, and the built-in sets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..common.i18n import Message


class FeatureColumns:
    """What Dataset and Problem share about their features: one column `x`, or k >= 2
    `features` with `x` left empty (code reading `x` as the one feature then fails)."""

    x: tuple[float, ...]
    features: tuple[tuple[float, ...], ...]

    @property
    def columns(self) -> tuple[tuple[float, ...], ...]:
        """Every feature's column: (x,) for one feature."""
        return self.features or (self.x,)

    @property
    def k(self) -> int:
        """The number of features."""
        return len(self.columns)

    @property
    def table(self) -> tuple[float, ...] | tuple[tuple[float, ...], ...]:
        """The features as the JSON and the report write them: one feature's column as it
        is, several as each sample's row (X, n by k)."""
        columns = self.columns
        return columns[0] if len(columns) == 1 else tuple(zip(*columns, strict=True))


@dataclass(frozen=True)
class Dataset(FeatureColumns):
    """Named (x, y) samples, as the user gave them.

    One feature is the column `x`; several are `features`, one column each, with `x`
    left empty, so that code reading `x` as the one feature fails loudly on them.
    """

    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    source: str  # where the samples came from, shown in the report
    origin: Message | None = None  # the same, to be put into words (None: source as is)
    features: tuple[tuple[float, ...], ...] = ()  # k >= 2 columns; () for one feature
    feature_names: tuple[str, ...] = ()  # the CSV's column names, when it had them


def several_features(
    name: str,
    columns: Sequence[Sequence[float]],
    y: Sequence[float],
    source: str,
    origin: Message | None = None,
    feature_names: Sequence[str] = (),
) -> Dataset:
    """A Dataset from k feature columns; one column is the one-feature form."""
    as_tuples = tuple(tuple(map(float, column)) for column in columns)
    if len(as_tuples) == 1:
        return Dataset(name, as_tuples[0], tuple(map(float, y)), source, origin)
    return Dataset(name, (), tuple(map(float, y)), source, origin, as_tuples, tuple(feature_names))


def _packaged(name: str, file: str, features: tuple[str, ...], target: str, source: str) -> Dataset:
    """A data set shipped with the package (derive/data), its chosen columns."""
    from importlib import resources

    text = resources.files("derive").joinpath("data", file).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split(",")
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    columns = [table[:, header.index(f)].tolist() for f in features]
    y = table[:, header.index(target)].tolist()
    return several_features(name, columns, y, source, feature_names=features)


BUILTIN_DATASETS: Mapping[str, Dataset] = {
    "seed": Dataset(
        "seed", (3.3, 1.0), (1.7, 2.0), "built-in: the two samples of the reference script"
    ),
    "single": Dataset("single", (3.3,), (1.7,), "built-in: one sample, x = 3.3, y = 1.7"),
    "tf-examples": Dataset(
        "tf-examples",
        (
            3.3,
            4.4,
            5.5,
            6.71,
            6.93,
            4.168,
            9.779,
            6.182,
            7.59,
            2.167,
            7.042,
            10.791,
            5.313,
            7.997,
            5.654,
            9.27,
            3.1,
        ),
        (
            1.7,
            2.76,
            2.09,
            3.19,
            1.694,
            1.573,
            3.366,
            2.596,
            2.53,
            1.221,
            2.827,
            3.465,
            1.65,
            2.904,
            2.42,
            2.94,
            1.3,
        ),
        "built-in: the 17-point example data of the TensorFlow tutorials",
    ),
    # Two features on a scale where plain SGD at the default rate is stable
    "flats": several_features(
        "flats",
        (
            (5.0, 7.2, 6.1, 9.4, 4.3, 8.0),  # floor area in tens of square metres
            (2.0, 3.0, 2.0, 4.0, 1.0, 3.0),  # rooms
        ),
        (1.9, 2.8, 2.3, 3.7, 1.5, 3.1),  # price in hundreds of thousands
        "built-in: six made-up flats, floor area (10 m²) and rooms against price (100k)",
        feature_names=("area", "rooms"),
    ),
    # Real data, hundreds of rows, three features on very different scales
    "diabetes": _packaged(
        "diabetes",
        "diabetes.csv",
        ("bmi", "bp", "s5"),
        "progression",
        "built-in: 442 diabetes patients (Efron et al., 2004): body mass index, blood "
        "pressure and serum s5 against disease progression",
    ),
}
