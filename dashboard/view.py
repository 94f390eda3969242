"""What a page draws, as typed values, and how it is written to and read from a link.

A :class:`View` is resolved once per script run (``dashboard/Home.py`` does it through
``dashboard.state``) and handed to the page. :func:`to_query` writes a view's model and
sample to the query string; :func:`from_query` reads them back with the warnings a bad
link deserves; :func:`check_sample` checks a sample against the data it indexes. Every
view the app can produce round-trips. No Streamlit here: this is plain logic, tested alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from core.checkpoints import CheckpointInfo, ModelRef
from core.data import MNIST_WORDS, Mnist, Naming
from core.jobs import JobStatus
from core.train import TrainedModel
from core.units import UnitLayer

DATA_SPLITS = ("test", "train")
DRAWN = "drawn"  # the user's own digit, drawn or uploaded: not in any split, not in links


@dataclass(frozen=True)
class Sample:
    """A digit: an index into a data split, or the user's own (``split == DRAWN``, index 0)."""

    split: str
    index: int

    @property
    def title(self) -> str:
        """``"test #8"``, or ``"your digit"`` for the user's own (:meth:`title_in` says another noun)."""
        return self.title_in()

    def title_in(self, words: Naming = MNIST_WORDS) -> str:
        """``"test #8"``, or the user's own called by the data set's noun: ``"your digit"`` (the
        default), ``"your image"``, ``"your item"``."""
        if self.split != DRAWN:
            return f"{self.split} #{self.index:,}"
        return f"your {words.noun}"


FIRST = Sample("test", 0)


@dataclass(frozen=True)
class Unit:
    """A unit whose card is shown: a channel of a conv layer or an output of a hidden linear
    layer, and optionally a position of its grid (the value taken apart step by step; None:
    the digit's strongest). Which layers and units exist depends on the network: see
    :func:`check_unit`."""

    layer: str
    unit: int
    position: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.unit < 0:
            raise ValueError(f"units are numbered from 0, not {self.unit}")

    def title(self, layers: Mapping[str, UnitLayer]) -> str:
        """``"conv3 · channel 7"``, ``"fc1 · unit 2"``."""
        found = layers.get(self.layer)
        return f"{self.layer} · {found.unit_word if found else 'unit'} {self.unit}"


def check_unit(unit: Unit, layers: Mapping[str, UnitLayer]) -> tuple[Unit, list[str]]:
    """``unit`` if the network has it (a position off its layer's grid dropped), else the
    network's first unit, with a sentence saying what was asked and what is shown instead."""
    if not layers:
        return unit, []
    first = Unit(next(iter(layers)), 0)
    found = layers.get(unit.layer)
    if found is None:
        return first, [
            f"This network has no layer {unit.layer!r} with unit cards (it has {', '.join(layers)}): "
            f"showing {first.title(layers)}."
        ]
    if unit.unit >= found.units:
        return Unit(unit.layer, 0), [
            f"{unit.layer} has {found.unit_word}s 0 to {found.units - 1}, not {unit.unit}: showing "
            f"{Unit(unit.layer, 0).title(layers)}."
        ]
    if unit.position is not None:
        rows, cols = found.grid or (1, 1)
        if found.grid is None or not (0 <= unit.position[0] < rows and 0 <= unit.position[1] < cols):
            where = f"{unit.position[0]},{unit.position[1]}"
            return Unit(unit.layer, unit.unit), [
                f"{where} is not a position of {unit.layer}'s {rows}×{cols} grid: showing the strongest."
            ]
    return unit, []


FIRST_UNIT = Unit("conv1", 0)


PROBE_TOOLS = ("edit", "bend", "change", "training")  # the Probe page's tools, as the URL names them
PROBE_KINDS = ("rotation", "shift_x", "shift_y", "scale", "thickness", "noise", "occlusion")  # core.probes.KINDS


@dataclass(frozen=True)
class Probe:
    """The Probe page's choices: its tool, the bend swept, and the class the smallest change aims at
    (None: the runner-up). In the URL as ``probe=bend&bend=rotation&toward=9``."""

    tool: str = "edit"
    kind: str = "rotation"
    target: int | None = None

    def __post_init__(self) -> None:
        if self.tool not in PROBE_TOOLS:
            raise ValueError(f"unknown probe {self.tool!r}: use one of {', '.join(PROBE_TOOLS)}")
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"unknown bend {self.kind!r}: use one of {', '.join(PROBE_KINDS)}")
        if self.target is not None and not 0 <= self.target < 10:
            raise ValueError(f"class {self.target} is not 0 to 9")


FIRST_PROBE = Probe()


def probe_to_query(probe: Probe) -> dict[str, str]:
    params = {"probe": probe.tool, "bend": probe.kind}
    if probe.target is not None:
        params["toward"] = str(probe.target)
    return params


def probe_from_query(params: Mapping[str, str]) -> tuple[Probe | None, list[str]]:
    """The probe a link names (None when it names none), and a warning for a bad one."""
    if not {"probe", "bend", "toward"} & set(params):
        return None, []
    try:
        target = params.get("toward")
        return Probe(
            params.get("probe", "edit"), params.get("bend", "rotation"), None if target is None else int(target)
        ), []
    except ValueError as err:
        return None, [f"The link's probe cannot be shown ({err}); showing the first tool."]


@dataclass(frozen=True)
class LabelFilter:
    """The Suspicious labels page's choices: which split it ranks, the classes it keeps (None:
    any) and the page of the ranking shown (1-based). In the URL as
    ``labels=train&given=7&says=1&page=2`` (``page`` left out on the first)."""

    split: str = "train"
    given: int | None = None
    says: int | None = None
    page: int = 1

    def __post_init__(self) -> None:
        if self.split not in DATA_SPLITS:
            raise ValueError(f"split {self.split!r} is not one of {', '.join(DATA_SPLITS)}")
        for name in ("given", "says"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 10:
                raise ValueError(f"class {value} is not 0 to 9")
        if self.page < 1:
            raise ValueError(f"page {self.page} is not 1 or more")


FIRST_FILTER = LabelFilter()


def label_filter_to_query(chosen: LabelFilter) -> dict[str, str]:
    params = {"labels": chosen.split}
    if chosen.given is not None:
        params["given"] = str(chosen.given)
    if chosen.says is not None:
        params["says"] = str(chosen.says)
    if chosen.page != 1:
        params["page"] = str(chosen.page)
    return params


def label_filter_from_query(params: Mapping[str, str]) -> tuple[LabelFilter | None, list[str]]:
    """The label filter a link names (None when it names none), and a warning for a bad one."""
    if not {"labels", "given", "says", "page"} & set(params):
        return None, []
    try:
        given = None if params.get("given") is None else int(params["given"])
        says = None if params.get("says") is None else int(params["says"])
        page = int(params.get("page", 1))
        return LabelFilter(params.get("labels", "train"), given, says, page), []
    except ValueError as err:
        return None, [f"The link's label filter cannot be shown ({err}); showing the ranking of every training label."]


@dataclass(frozen=True)
class View:
    """Everything a page draws from: which weights, the model itself, the data, the digit.

    ``trained`` is None only while the first model is still training (``job`` then says
    how far it is); pages draw what needs no model and show the job's progress.
    """

    ref: ModelRef | None
    trained: TrainedModel | None
    data: Mnist
    sample: Sample
    drawn: np.ndarray | None = None  # the user's own digit, uint8 (28, 28)
    job: JobStatus | None = None
    unit: Unit = FIRST_UNIT  # the unit card's choice, one the network has (check_unit)
    unit_layers: Mapping[str, UnitLayer] = field(default_factory=dict)  # the network's layers with unit cards
    probe: Probe = FIRST_PROBE  # the Probe page's choices
    label_filter: LabelFilter = FIRST_FILTER  # the Suspicious labels page's choices

    @property
    def host(self) -> bool:
        """The model shown is a network the host named (--net), not the reference trained here."""
        return self.trained is not None and self.trained.info.host

    @property
    def epoch(self) -> int:
        """The epoch whose weights are in use."""
        assert self.trained is not None and self.ref is not None
        return self.ref.epoch or self.trained.info.epochs_done

    def at(self, point: int) -> ModelRef:
        """The weights of saved point ``point`` of the model shown, as links name them: the last
        point as the model itself. (``trained.info.key`` reads "KEY~N" while the model still
        trains; ``ref.key`` is always the model's own key.)"""
        assert self.trained is not None and self.ref is not None
        return self.ref.last() if point >= self.trained.info.epochs_done else ModelRef(self.ref.key, point)

    @property
    def words(self) -> Naming:
        """What sentences call one of the data set's images ("digit", "image", "item") and it."""
        return self.data.words

    def title(self, sample: Sample | None = None) -> str:
        """``sample``'s title (default: the selected one's), the user's own called by the data
        set's noun: ``"test #8"``, ``"your digit"``, ``"your item"``."""
        return (sample or self.sample).title_in(self.words)

    @property
    def epoch_name(self) -> str:
        """``"epoch 3"``, or ``"epoch 1.5"`` for weights saved inside an epoch."""
        return self.trained.info.config.point_name(self.epoch)

    def image(self, sample: Sample | None = None) -> np.ndarray:
        """uint8 (28, 28) pixels of ``sample`` (default: the selected one)."""
        sample = sample or self.sample
        if sample.split == DRAWN:
            if self.drawn is None:
                raise LookupError("no digit has been drawn or uploaded in this session")
            return self.drawn
        return self.data.split(sample.split).images[sample.index]

    def label(self, sample: Sample | None = None) -> int | None:
        """The true label, or None for the user's own digit."""
        sample = sample or self.sample
        if sample.split == DRAWN:
            return None
        return int(self.data.split(sample.split).labels[sample.index])


def to_query(ref: ModelRef | None, sample: Sample) -> dict[str, str]:
    """The query string's parameters for a model and a sample (the user's own digit has none)."""
    params = {} if ref is None else {"model": str(ref)}
    if sample.split in DATA_SPLITS:
        params.update(split=sample.split, index=str(sample.index))
    return params


def unit_to_query(unit: Unit) -> dict[str, str]:
    """The query string's parameters for a unit card (``layer``, ``unit``, ``at=ROW,COL``)."""
    params = {"layer": unit.layer, "unit": str(unit.unit)}
    if unit.position is not None:
        params["at"] = f"{unit.position[0]},{unit.position[1]}"
    return params


def unit_from_query(params: Mapping[str, str]) -> tuple[Unit, list[str]]:
    """The unit a link names (the first unit when it names none), and a warning when the
    link's unit is not a unit at all; whether the network has it is :func:`check_unit`'s
    question. A bad position alone falls back to the strongest one."""
    if "layer" not in params and "unit" not in params:
        return FIRST_UNIT, []
    layer, raw = params.get("layer", FIRST_UNIT.layer), params.get("unit", "0")
    try:
        unit = Unit(layer, int(raw))
    except ValueError as err:
        return FIRST_UNIT, [f"The link's unit ({layer} {raw!r}) cannot be shown: {err}. Showing the first unit."]
    if "at" not in params:
        return unit, []
    try:
        row, col = (int(v) for v in params["at"].split(","))
        return Unit(layer, unit.unit, (row, col)), []
    except ValueError:
        where = params["at"]
        return unit, [f"The link's position {where!r} is not a ROW,COL of {layer}'s grid: showing the strongest."]


def cell_to_query(cell: tuple[int, int]) -> dict[str, str]:
    """The query string's parameter for a confusion cell (true, predicted): ``cell=4,9``."""
    return {"cell": f"{cell[0]},{cell[1]}"}


def cell_from_query(params: Mapping[str, str], classes: int = 10) -> tuple[tuple[int, int] | None, list[str]]:
    """The confusion cell a link names (None when it names none), and a warning for a bad one."""
    if "cell" not in params:
        return None, []
    try:
        true, pred = (int(v) for v in params["cell"].split(","))
    except ValueError:
        true = pred = -1
    if not (0 <= true < classes and 0 <= pred < classes):
        return None, [f"The link's confusion cell {params['cell']!r} is not TRUE,PREDICTED with classes 0 to 9."]
    return (true, pred), []


def from_query(
    params: Mapping[str, str], models: Mapping[str, CheckpointInfo]
) -> tuple[ModelRef | None, Sample, list[str]]:
    """The model and sample a link names, and a warning per thing that could not be honoured.

    ``models``: the cached models by key. A missing or unusable ``model`` gives None (the
    caller picks the default); the sample's index is checked later, by
    :func:`check_sample`, against the data of the model finally chosen.
    """
    warnings: list[str] = []
    ref = None
    wanted = params.get("model", "")
    if wanted:
        try:
            ref = ModelRef.parse(wanted)
        except ValueError as err:
            warnings.append(f"The link's model {wanted!r} cannot be read ({err}); showing the default model.")
        if ref is not None and ref.key not in models:
            warnings.append(f"The model {ref.key!r} from the link is not in this machine's cache; showing another one.")
            ref = None
        if ref is not None:
            ref, problem = check_epoch(ref, models[ref.key])
            warnings += problem
    split = params.get("split", "test")
    raw_index = params.get("index", "0")
    if split not in DATA_SPLITS:
        warnings.append(f"The link names split {split!r}; only 'test' and 'train' exist. Showing test #0.")
        return ref, FIRST, warnings
    try:
        index = int(raw_index)
    except ValueError:
        warnings.append(f"The link's index {raw_index!r} is not a number. Showing {split} #0.")
        index = 0
    return ref, Sample(split, index), warnings


def check_epoch(ref: ModelRef, info: CheckpointInfo) -> tuple[ModelRef, list[str]]:
    """``ref`` with its epoch checked against what is saved; the last epoch is written as no epoch."""
    if ref.epoch is None or ref.epoch == info.epochs_done:
        return ref.last(), []
    if 1 <= ref.epoch < info.epochs_done:
        return ref, []
    if info.config.saves_per_epoch == 1:
        asked, saved = f"epoch {ref.epoch}", f"epochs 1 to {info.epochs_done}"
    else:
        config = info.config
        asked = f"saved point {ref.epoch}"
        saved = f"{info.epochs_done} points, {config.point_name(1)} to {config.point_name(info.epochs_done)}"
    return ref.last(), [
        f"The link asks for {asked}, but this model saved {saved}; showing {info.config.point_name(info.epochs_done)}."
    ]


def check_sample(sample: Sample, data: Mnist, has_drawn: bool) -> tuple[Sample, list[str]]:
    """``sample`` if ``data`` has it, else the first test digit with a warning saying why."""
    if sample.split == DRAWN:
        return (sample, []) if has_drawn else (FIRST, [])
    if sample.split not in DATA_SPLITS:
        return FIRST, [f"Split {sample.split!r} does not exist; only 'test' and 'train' do. Showing test #0."]
    size = len(data.split(sample.split))
    if not 0 <= sample.index < size:
        return Sample(sample.split, 0), [
            f"Index {sample.index:,} is out of range: the {sample.split} split has 0 to {size - 1:,}. "
            f"Showing {sample.split} #0."
        ]
    return sample, []
