"""One :class:`DatasetSpec` per benchmark dataset: where it lives, how it is read, what it should hold.

Folder names, split files and templates follow CoOp's ``DATASETS.md`` so data laid out for CoOp is
read unchanged. Expected sizes are CoOp's official split sizes; ``upt data check`` compares to them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from upt.errors import UptError, unknown_name

ReaderKind = Literal["split_json", "fgvc", "imagenet", "imagenetv2", "wnid_folders", "wnid_subset", "shapes"]
Fallback = Literal["folders", "pets", "none"]
DATA_ROOT_ENV = "UPT_DATA_ROOT"
_ZHOU = "https://drive.google.com/file/d/{}/view"


@dataclass(frozen=True)
class Download:
    """How to obtain a dataset.

    Attributes:
        torchvision: The torchvision class that can download the images, or None.
        steps: Manual steps, in order, that give the layout this library reads.
    """

    torchvision: str | None
    steps: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the readers and ``upt data check`` need to know about one dataset.

    Attributes:
        name: Registry name (``--dataset``).
        folder: Folder under the data root.
        reader: Which reader in :mod:`upt.data.readers` reads it.
        image_dir: Folder (relative to ``folder``) that split-file paths are relative to.
        split_file: CoOp split JSON inside ``folder``, or None when the layout defines the split.
        template: Zero-shot template with one ``{}``.
        num_classes: Classes in the full dataset.
        description: One line for ``upt list datasets``.
        download: Where to get it.
        layout: What must be inside ``folder`` (for error messages).
        n_train: Expected train size of the official split, when known.
        n_val: Expected val size, when known.
        n_test: Expected test size, when known.
        renames: Class-name renames applied before underscores become spaces.
        ignored: Class folders that are not classes.
        fallback: What to do when ``split_file`` is missing: CoOp's 50/20/30 split of the class
            folders, CoOp's 80/20 split of Pets' official trainval, or stop with the manual steps.
        split_url: Where CoOp's split file can be downloaded.
        ensemble_with_template: Whether a template ensemble adds this dataset's own template to
            CLIP's seven (CoOp's ``ZeroshotCLIP2``: every dataset but ImageNet, whose seven were
            selected on it).
    """

    name: str
    folder: str
    reader: ReaderKind
    image_dir: str
    split_file: str | None
    template: str
    num_classes: int
    description: str
    download: Download
    layout: str
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    renames: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    fallback: Fallback = "none"
    split_url: str | None = None
    ensemble_with_template: bool = True

    @property
    def expected(self) -> dict[str, int | None]:
        """Expected size per split (None where unknown)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    @property
    def rename_map(self) -> dict[str, str]:
        """``renames`` as a dict."""
        return dict(self.renames)

    def dataset_dir(self, root: str | os.PathLike) -> str:
        """Absolute path of this dataset's folder under ``root``."""
        return os.path.abspath(os.path.join(os.path.expanduser(str(root)), self.folder))


def _zhou(file: str, drive_id: str, folder: str) -> str:
    return f"Download {file} from {_ZHOU.format(drive_id)} (CoOp's split) into <data-root>/{folder}/."


def _coop(name: str, folder: str, image_dir: str, split: str, drive: str, tmpl: str, n_cls: int,
          sizes: tuple[int, int, int], desc: str, tv: str | None, steps: tuple[str, ...],
          layout: str, **kw) -> DatasetSpec:
    split_file = f"split_zhou_{split}.json"
    dl = Download(tv, (*steps, _zhou(split_file, drive, folder)))
    n_train, n_val, n_test = sizes
    return DatasetSpec(name, folder, "split_json", image_dir, split_file, tmpl, n_cls, desc, dl,
                       f"{layout} and {split_file}", n_train, n_val, n_test, split_url=_ZHOU.format(drive), **kw)


_PHOTO = "a photo of a {}."
_INET_NAMES = ("Download classnames.txt (CLIP's cleaned names) from "
               + _ZHOU.format("1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF") + " into <data-root>/imagenet/.")
_EUROSAT = (("AnnualCrop", "Annual Crop Land"), ("Forest", "Forest"),
            ("HerbaceousVegetation", "Herbaceous Vegetation Land"), ("Highway", "Highway or Road"),
            ("Industrial", "Industrial Buildings"), ("Pasture", "Pasture Land"),
            ("PermanentCrop", "Permanent Crop Land"), ("Residential", "Residential Buildings"),
            ("River", "River"), ("SeaLake", "Sea or Lake"))
_CALTECH = (("airplanes", "airplane"), ("Faces", "face"), ("Leopards", "leopard"), ("Motorbikes", "motorbike"))


def _copy_names(folder: str) -> str:
    return f"Copy <data-root>/imagenet/classnames.txt into <data-root>/{folder}/."


_SPECS = (
    DatasetSpec(
        "imagenet", "imagenet", "imagenet", "images", None, _PHOTO, 1000,
        "ImageNet-1k; test = the official val set (CoOp), which CoOp also uses as val.",
        Download(None, ("Get ILSVRC2012 from https://image-net.org (registration needed).",
                        "Extract train/ and val/ (one folder per wnid) into <data-root>/imagenet/images/.",
                        _INET_NAMES)),
        "images/train/<wnid>/, images/val/<wnid>/ and classnames.txt", 1281167, None, 50000,
        ensemble_with_template=False),
    _coop("caltech101", "caltech-101", "101_ObjectCategories", "Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN",
          _PHOTO, 100, (4128, 1649, 2465), "Caltech-101 objects (background and Faces_easy dropped).",
          "torchvision.datasets.Caltech101",
          ("torchvision.datasets.Caltech101(root, download=True), then move root/caltech101/101_ObjectCategories "
           "to <data-root>/caltech-101/ (or extract 101_ObjectCategories.tar.gz there).",),
          "101_ObjectCategories/", renames=_CALTECH, ignored=("BACKGROUND_Google", "Faces_easy"),
          fallback="folders"),
    _coop("oxford_pets", "oxford_pets", "images", "OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs",
          "a photo of a {}, a type of pet.", 37, (2944, 736, 3669), "Oxford-IIIT Pets, 37 cat and dog breeds.",
          "torchvision.datasets.OxfordIIITPet",
          ("torchvision.datasets.OxfordIIITPet(root, download=True), then rename root/oxford-iiit-pet to "
           "<data-root>/oxford_pets (or extract images.tar.gz and annotations.tar.gz from "
           "https://www.robots.ox.ac.uk/~vgg/data/pets/ there).",),
          "images/, annotations/", fallback="pets"),
    _coop("stanford_cars", "stanford_cars", "", "StanfordCars", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT",
          _PHOTO, 196, (6509, 1635, 8041), "Stanford Cars, 196 make/model/year classes.", None,
          ("The official links are dead and torchvision cannot download it: get cars_train/, cars_test/, "
           "devkit/ and cars_test_annos_withlabels.mat from a mirror (e.g. the Kaggle copy of Stanford Cars) "
           "into <data-root>/stanford_cars/.",),
          "cars_train/, cars_test/, devkit/"),
    _coop("oxford_flowers", "oxford_flowers", "jpg", "OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT",
          "a photo of a {}, a type of flower.", 102, (4093, 1633, 2463), "Oxford Flowers-102.",
          "torchvision.datasets.Flowers102",
          ("torchvision.datasets.Flowers102(root, download=True), then rename root/flowers-102 to "
           "<data-root>/oxford_flowers (or get 102flowers.tgz and imagelabels.mat from "
           "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/).",
           "Download cat_to_name.json from " + _ZHOU.format("1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0")
           + " into <data-root>/oxford_flowers/."),
          "jpg/, imagelabels.mat, cat_to_name.json"),
    _coop("food101", "food-101", "images", "Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl",
          "a photo of {}, a type of food.", 101, (50500, 20200, 30300), "Food-101 dishes.",
          "torchvision.datasets.Food101",
          ("torchvision.datasets.Food101(<data-root>, download=True) gives <data-root>/food-101/ directly.",),
          "images/, meta/", fallback="folders"),
    DatasetSpec(
        "fgvc_aircraft", "fgvc_aircraft", "fgvc", "images", None, "a photo of a {}, a type of aircraft.", 100,
        "FGVC-Aircraft 2013b, 100 variants; official train/val/test lists.",
        Download("torchvision.datasets.FGVCAircraft",
                 ("torchvision.datasets.FGVCAircraft(root, download=True), or extract fgvc-aircraft-2013b.tar.gz "
                  "from https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/.",
                  "Move its data/ folder to <data-root>/fgvc_aircraft/.")),
        "images/, variants.txt and images_variant_{train,val,test}.txt", 3334, 3333, 3333),
    _coop("sun397", "sun397", "SUN397", "SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq",
          _PHOTO, 397, (15880, 3970, 19850), "SUN397 scenes.", "torchvision.datasets.SUN397",
          ("torchvision.datasets.SUN397(<data-root>/sun397, download=True), or extract SUN397.tar.gz from "
           "https://vision.princeton.edu/projects/2010/SUN/ into <data-root>/sun397/.",),
          "SUN397/"),
    _coop("dtd", "dtd", "images", "DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x",
          "{} texture.", 47, (2820, 1128, 1692), "Describable Textures, 47 texture words.",
          "torchvision.datasets.DTD",
          ("torchvision.datasets.DTD(root, download=True), then move root/dtd/dtd to <data-root>/dtd (or "
           "extract dtd-r1.0.1.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/dtd/ into <data-root>).",),
          "images/", fallback="folders"),
    _coop("eurosat", "eurosat", "2750", "EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o",
          "a centered satellite photo of {}.", 10, (13500, 5400, 8100), "EuroSAT RGB land-use tiles.",
          "torchvision.datasets.EuroSAT",
          ("torchvision.datasets.EuroSAT(<data-root>, download=True) gives <data-root>/eurosat/2750/ directly.",),
          "2750/", renames=_EUROSAT, fallback="folders"),
    _coop("ucf101", "ucf101", "UCF-101-midframes", "UCF101", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y",
          "a photo of a person doing {}.", 101, (7639, 1898, 3783), "UCF101 actions, one middle frame per video.",
          None,
          ("Download UCF-101-midframes.zip from " + _ZHOU.format("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O")
           + " and extract it into <data-root>/ucf101/.",),
          "UCF-101-midframes/"),
    DatasetSpec(
        "imagenetv2", "imagenetv2", "imagenetv2", "imagenetv2-matched-frequency-format-val", None, _PHOTO, 1000,
        "ImageNetV2 matched-frequency (test only).",
        Download(None, ("Extract https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz "
                        "into <data-root>/imagenetv2/.", _copy_names("imagenetv2"))),
        "imagenetv2-matched-frequency-format-val/<0..999>/ and classnames.txt", n_test=10000),
    DatasetSpec(
        "imagenet_sketch", "imagenet-sketch", "wnid_folders", "images", None, _PHOTO, 1000,
        "ImageNet-Sketch (test only).",
        Download(None, ("Get ImageNet-Sketch from https://github.com/HaohanWang/ImageNet-Sketch and extract it so "
                        "that <data-root>/imagenet-sketch/images/<wnid>/ exists.", _copy_names("imagenet-sketch"))),
        "images/<wnid>/ and classnames.txt", n_test=50889),
    DatasetSpec(
        "imagenet_a", "imagenet-adversarial", "wnid_subset", "imagenet-a", None, _PHOTO, 200,
        "ImageNet-A natural adversarial examples, 200 classes (test only).",
        Download(None, ("Get imagenet-a.tar from https://github.com/hendrycks/natural-adv-examples and extract it "
                        "into <data-root>/imagenet-adversarial/.", _copy_names("imagenet-adversarial"))),
        "imagenet-a/<wnid>/ and classnames.txt", n_test=7500),
    DatasetSpec(
        "imagenet_r", "imagenet-rendition", "wnid_subset", "imagenet-r", None, _PHOTO, 200,
        "ImageNet-R renditions, 200 classes (test only).",
        Download(None, ("Get imagenet-r.tar from https://github.com/hendrycks/imagenet-r and extract it into "
                        "<data-root>/imagenet-rendition/.", _copy_names("imagenet-rendition"))),
        "imagenet-r/<wnid>/ and classnames.txt", n_test=30000),
    DatasetSpec(
        "shapes", "shapes", "shapes", "", None, "a drawing of a {}.", 6,
        "Synthetic coloured shapes drawn on the fly: an offline quick start, not a benchmark.",
        Download(None, ("Nothing to download: it is generated into <data-root>/shapes/ on first use "
                        "(or run `upt data shapes --out <data-root>/shapes`).",)),
        "one folder per shape", 180, 72, 108),
)

CATALOG: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}


def get_spec(name: str) -> DatasetSpec:
    """Return the spec of a catalog dataset; an unknown name raises with the closest match."""
    try:
        return CATALOG[name]
    except KeyError:
        raise unknown_name("dataset", name, CATALOG) from None


def list_datasets() -> list[dict]:
    """Rows for ``upt list datasets``: name, classes, folder, template, description."""
    return [
        {"name": s.name, "classes": s.num_classes, "folder": s.folder, "template": s.template,
         "description": s.description}
        for s in _SPECS
    ]


def resolve_root(root: str | os.PathLike | None) -> str:
    """The data root: ``root``, else ``$UPT_DATA_ROOT``, else ``./data``; as an absolute path."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ROOT_ENV) or "data"
    return os.path.abspath(os.path.expanduser(str(root)))


def manual_steps(spec: DatasetSpec) -> str:
    """The numbered manual steps that produce ``spec``'s layout."""
    lines = [f"{i}. {step}" for i, step in enumerate(spec.download.steps, 1)]
    return "\n".join(lines)


def missing_root_error(root: str, spec: DatasetSpec) -> UptError:
    """The error for a data root that does not exist."""
    return UptError(
        f"Data root {root} does not exist: pass --data-root (or set {DATA_ROOT_ENV}) to the folder that "
        f"holds {spec.folder}/."
    )
