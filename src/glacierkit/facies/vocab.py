"""Facies class vocabulary and the tables that map user label vocabularies onto it.

The default vocabulary is the eight glacier surface facies of the pan-European facies
dataset (ice, snow, firn, debris, superimposed ice, shadow, cloud, water). Label sets from
other projects use other names and codes ("shadowed snow", "rock", ``1`` … ``5``); a
:class:`Vocabulary` maps each of them onto a facies name with an explicit table, so that the
choice ("shadowed snow" → snow or → shadow) is visible and stated in every output
(:meth:`Vocabulary.describe`, the model file, the reports).

No torch here.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glacierkit.errors import InputError

__all__ = [
    "FACIES",
    "FACIES_COLOURS",
    "PRESETS",
    "Vocabulary",
    "label_table_from_mapping",
    "normalise_label",
    "read_label_table",
]

#: The eight default facies, in this order (index = default class value).
FACIES: tuple[str, ...] = ("ice", "snow", "firn", "debris", "superimposed_ice", "shadow",
                           "cloud", "water")

#: RGBA colours of the facies in ``facies.tif``'s colour table and the figures.
FACIES_COLOURS: dict[str, tuple[int, int, int, int]] = {
    "ice": (8, 64, 129, 255),
    "snow": (240, 248, 255, 255),
    "firn": (130, 190, 230, 255),
    "debris": (150, 110, 70, 255),
    "superimposed_ice": (90, 160, 160, 255),
    "shadow": (60, 50, 110, 255),
    "cloud": (200, 200, 200, 255),
    "water": (30, 80, 200, 255),
}

#: Names understood without a table (after :func:`normalise_label`): the facies themselves
#: and common spellings.
_SYNONYMS: dict[str, str] = {
    **{f: f for f in FACIES},
    "bare_ice": "ice", "clean_ice": "ice", "glacier_ice": "ice",
    "seasonal_snow": "snow", "fresh_snow": "snow",
    "debris_covered_ice": "debris", "debris_cover": "debris",
    "si": "superimposed_ice", "superimposed": "superimposed_ice",
    "shade": "shadow", "shadows": "shadow", "clouds": "cloud",
    "lake": "water", "proglacial_lake": "water",
}

#: Mapping tables of known label sets, ``{preset: {label: facies}}`` (labels normalised).
PRESETS: dict[str, dict[str, str]] = {
    # Aberle et al., glacier-snow-cover-mapping (codes of datasets_characteristics.json):
    # 1 snow, 2 shadowed snow, 3 ice, 4 rock, 5 water. Shadowed snow is snow (the label says
    # what the surface is, not how it is lit); rock is mapped to debris (rock surfaces on and
    # around the glacier are spectrally the debris class).
    "aberle": {"1": "snow", "2": "snow", "3": "ice", "4": "debris", "5": "water",
               "snow": "snow", "shadowed_snow": "snow", "ice": "ice", "rock": "debris",
               "water": "water"},
    # The same table but keeping the illumination: shadowed snow → shadow.
    "aberle_shadow": {"1": "snow", "2": "shadow", "3": "ice", "4": "debris", "5": "water",
                      "snow": "snow", "shadowed_snow": "shadow", "ice": "ice",
                      "rock": "debris", "water": "water"},
}

#: Header of a label table file (:func:`read_label_table`): input label, facies name.
TABLE_COLUMNS: tuple[str, str] = ("label", "facies")


def normalise_label(label: Any) -> str:
    """A label in canonical form, for comparisons.

    Lower case with runs of spaces, dashes and dots as ``_`` (``"Shadowed snow"`` →
    ``"shadowed_snow"``); integral numbers as their integer text (``3.0`` → ``"3"``).
    """
    if isinstance(label, float | np.floating) and float(label).is_integer():
        label = int(label)
    if isinstance(label, int | np.integer):
        return str(int(label))
    text = str(label).strip().lower()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number.is_integer():
            return str(int(number))
    return re.sub(r"[\s\-./]+", "_", text).strip("_")


@dataclass
class Vocabulary:
    """Facies classes and the table that maps input labels onto them.

    Args:
        classes: The facies names (output class ``i`` is ``classes[i]``); default the eight
            :data:`FACIES`.
        table: ``{input label: facies name}`` applied before the built-in synonyms; labels are
            compared after :func:`normalise_label`. A preset name of :data:`PRESETS` may be
            given instead of a dict.

    Unknown labels raise :class:`~glacierkit.errors.InputError` listing the vocabulary and the
    table, never a silent drop.
    """

    classes: tuple[str, ...] = FACIES
    table: dict[str, str] = field(default_factory=dict)
    preset: str | None = None

    def __post_init__(self) -> None:
        self.classes = tuple(normalise_label(c) for c in self.classes)
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise InputError(f"facies classes must be unique and non-empty; got "
                             f"{list(self.classes)}.")
        if isinstance(self.table, str):   # a preset name instead of a table (documented)
            if self.table not in PRESETS:
                raise InputError(f"unknown label preset {self.table!r}; choose one of "
                                 f"{sorted(PRESETS)} or give the table explicitly.")
            self.preset = self.preset or self.table
            self.table = dict(PRESETS[self.table])
        table = {normalise_label(k): normalise_label(v) for k, v in self.table.items()}
        bad = sorted({v for v in table.values() if v not in self.classes})
        if bad:
            raise InputError(f"the label table maps onto {bad}, which are not facies of the "
                             f"vocabulary {list(self.classes)}.")
        self.table = table

    @classmethod
    def from_preset(cls, name: str, classes: Sequence[str] = FACIES) -> Vocabulary:
        """The vocabulary with the mapping table of preset ``name`` (see :data:`PRESETS`)."""
        if name not in PRESETS:
            raise InputError(f"unknown label preset {name!r}; choose one of {sorted(PRESETS)} "
                             f"or give the table explicitly.")
        return cls(classes=tuple(classes), table=dict(PRESETS[name]), preset=name)

    @classmethod
    def from_spec(cls, spec: str | Mapping[str, Any] | None) -> Vocabulary:
        """From a preset name, ``{"classes": [...], "table": {...}}``, or None (default)."""
        if spec is None:
            return cls()
        if isinstance(spec, str):
            return cls.from_preset(spec)
        if not isinstance(spec, Mapping):
            raise InputError(f"a vocabulary is a preset name or a mapping with 'classes' and "
                             f"'table'; got {type(spec).__name__}.")
        unknown = set(spec) - {"classes", "table", "preset"}
        if unknown:
            raise InputError(f"unknown vocabulary key(s) {sorted(unknown)}; use 'classes', "
                             f"'table' or 'preset'.")
        classes = tuple(spec.get("classes") or FACIES)
        table: dict[str, str] = {}
        preset = spec.get("preset")
        if preset:
            if preset not in PRESETS:
                raise InputError(f"unknown label preset {preset!r}; choose one of "
                                 f"{sorted(PRESETS)}.")
            table.update(PRESETS[preset])
        table.update({str(k): str(v) for k, v in dict(spec.get("table") or {}).items()})
        return cls(classes=classes, table=table, preset=preset)

    def facies_of(self, label: Any) -> str:
        """The facies name of one input label."""
        key = normalise_label(label)
        if key in self.table:
            return self.table[key]
        name = _SYNONYMS.get(key, key)
        if name in self.classes:
            return name
        raise InputError(self._unknown_message([label]))

    def encode(self, labels: Iterable[Any]) -> np.ndarray:
        """Class indices (int64, into :attr:`classes`) of input labels.

        Raises:
            InputError: some labels are not in the table, the synonyms or the vocabulary; the
                message lists all unknown labels, the vocabulary and the table.
        """
        labels = list(labels)
        cache: dict[str, int] = {}
        out = np.empty(len(labels), dtype=np.int64)
        unknown: list[Any] = []
        for i, lab in enumerate(labels):
            key = normalise_label(lab)
            if key not in cache:
                try:
                    cache[key] = self.classes.index(self.facies_of(lab))
                except InputError:
                    cache[key] = -1
            out[i] = cache[key]
            if cache[key] < 0:
                unknown.append(lab)
        if unknown:
            raise InputError(self._unknown_message(unknown))
        return out

    def _unknown_message(self, labels: Sequence[Any]) -> str:
        uniq = sorted({str(x) for x in labels})
        table = ", ".join(f"{k} → {v}" for k, v in sorted(self.table.items())) or "(none)"
        return (f"unknown class label(s) {uniq[:20]}{' …' if len(uniq) > 20 else ''}: the "
                f"facies vocabulary is {list(self.classes)} and the label table is {{{table}}}. "
                f"Map them onto facies with a preset ({', '.join(sorted(PRESETS))}; facies "
                f"clean --vocabulary, [labels] vocabulary) or a label table: a CSV file with "
                f"the columns {','.join(TABLE_COLUMNS)} (e.g. a row {uniq[0]},debris; facies "
                f"clean --label-table FILE, [labels] table = \"FILE\") or, in a facies train "
                f"config, [labels.table] \"{uniq[0]}\" = \"debris\".")

    def describe(self) -> str:
        """One line stating the classes and the mapping (for logs and reports)."""
        table = ", ".join(f"{k} → {v}" for k, v in sorted(self.table.items()))
        src = f"preset {self.preset!r}: " if self.preset else ""
        return f"facies {list(self.classes)}; label table {src}{{{table or 'identity'}}}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in model files and reports)."""
        return {"classes": list(self.classes), "table": dict(self.table), "preset": self.preset}

    def subset(self, indices: Sequence[int]) -> tuple[str, ...]:
        """Names of the given class indices."""
        return tuple(self.classes[int(i)] for i in indices)


def colour_table(classes: Sequence[str]) -> dict[int, tuple[int, int, int, int]]:
    """Colour table ``{class value: RGBA}`` for a facies raster with these class names."""
    grey = (127, 127, 127, 255)
    return {i: FACIES_COLOURS.get(normalise_label(c), grey) for i, c in enumerate(classes)}


def label_table_from_mapping(table: Any, what: str = "the label table") -> dict[str, str]:
    """Check a ``{input label: facies name}`` mapping (e.g. a TOML inline table).

    Args:
        table: The mapping; keys and values are labels (strings or integral numbers).
        what: Where it came from, for error messages (``"[labels] table"``).

    Returns:
        ``{label: facies}`` as strings (normalised later by :class:`Vocabulary`).

    Raises:
        InputError: ``table`` is not a mapping, or a value is not a name.
    """
    if not isinstance(table, Mapping):
        raise InputError(f"{what} must map input labels to facies names, e.g. "
                         f"{{ \"rock\" = \"debris\" }}, or name a CSV file with the columns "
                         f"{','.join(TABLE_COLUMNS)}; got {type(table).__name__} {table!r}.")
    bad = {k: v for k, v in table.items() if not isinstance(v, str | int) or str(v).strip() == ""}
    if bad:
        raise InputError(f"{what}: every label must map to a facies name; got {bad}.")
    return {str(k): str(v) for k, v in table.items()}


def read_label_table(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a label table file: CSV with the header ``label,facies``, one mapping per row.

    The file form of the ``[labels] table`` of ``facies train`` configs, read by
    ``facies clean --label-table``::

        label,facies
        rock,debris
        shadowed snow,shadow
        2,snow

    Args:
        path: The CSV file (UTF-8; other columns are not allowed).

    Returns:
        ``{input label: facies name}`` (normalised later by :class:`Vocabulary`).

    Raises:
        InputError: The header is not ``label,facies``, a row has an empty or extra cell, a
            label is mapped twice to different facies, or the file has no rows.
        FileNotFoundError: The file does not exist.
    """
    name = os.fspath(path)
    with open(name, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    rows = [r for r in rows if any(c.strip() for c in r)]
    expected = ",".join(TABLE_COLUMNS)
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if tuple(header) != TABLE_COLUMNS:
        got = repr(",".join(header)) if header else "an empty file"
        raise InputError(f"label table {name} must start with the header line {expected!r} "
                         f"(input label, facies name); got {got}.")
    table: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) != 2 or not all(cells):
            raise InputError(f"label table {name}, row {line}: expected two non-empty cells "
                             f"({expected}); got {row}.")
        label, facies = cells
        key = normalise_label(label)
        if key in table and normalise_label(table[key]) != normalise_label(facies):
            raise InputError(f"label table {name}: label {label!r} is mapped twice, to "
                             f"{table[key]!r} and {facies!r}; keep one row per label.")
        table[key] = facies
    if not table:
        raise InputError(f"label table {name} has a header but no rows; add rows like "
                         f"'rock,debris'.")
    return table
