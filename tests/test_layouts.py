"""The layouts registry: a layout defined here, outside the package, is read by name and detected by
every verb; the README's example runs as written; the registry's rules hold for any layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.cli import main
from mtmct_reid.data.layouts import (
    LAYOUTS,
    Layout,
    available_layouts,
    detect_layout,
    list_images,
    read_dataset,
    register_layout,
)
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from tests._dataset_files import make_split_folders, write_images

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def registry():
    """The registry as the package left it, restored after the test (registering is global)."""
    before = dict(LAYOUTS)
    yield LAYOUTS
    LAYOUTS.clear()
    LAYOUTS.update(before)


def define_corridor_layout() -> type[Layout]:
    """A network of one corridor: ``corridor.txt`` lists cameras as ``NAME FPS``; every image is
    ``SPLIT/NAME_PID_FRAME.png``; times are seconds (frame / the camera's fps, or / ``fps``)."""

    @register_layout("corridor")
    class Corridor(Layout):
        looks_like = "corridor.txt"
        options = ("fps",)

        def detect(self, path: Path) -> bool:
            return path.is_dir() and (path / "corridor.txt").is_file()

        def read(self, path: Path, **options) -> Records:
            lines = (path / "corridor.txt").read_text().splitlines()
            rates = {name: float(fps) for name, fps in (line.split() for line in lines)}
            ids = {name: i for i, name in enumerate(rates, start=1)}
            rows = []
            for split in ("train", "query", "gallery"):
                for file in list_images(path / split):
                    name, pid, frame = Path(file).stem.split("_")
                    fps = options.get("fps") or rates[name]
                    time = int(frame) / fps
                    rows.append((path / split / file, int(pid), ids[name], time, split))
            paths, pids, cams, times, splits = zip(*rows, strict=True)
            names = {i: n for n, i in ids.items()}
            return Records.from_columns(paths, pids, cams, times, splits, names, root=path)

    return Corridor


def make_corridor(root: Path, pid_of_query: int = 4) -> Path:
    root.mkdir(parents=True)
    (root / "corridor.txt").write_text("west 25\neast 10\n")
    make_split_folders(
        root,
        {
            "train": ["west_3_250.png", "east_3_300.png"],
            "query": [f"west_{pid_of_query}_500.png"],
            "gallery": ["east_4_320.png", "east_0_10.png"],
        },
    )
    return root


def test_a_layout_defined_outside_the_package_is_detected_and_read(registry, tmp_path, capsys):
    define_corridor_layout()
    root = make_corridor(tmp_path / "corridor")
    # A stray CSV beside the images must not make it a manifest: registered layouts come first.
    (root / "notes.csv").write_text("a,b\n")
    assert available_layouts()[-2:] == ["manifest", "regex"]
    assert detect_layout(root) == "corridor"
    records = read_dataset(root)
    rows = {
        Path(p).name: (int(pid), records.camera_label(int(cam)), float(t), str(s))
        for p, pid, cam, t, s in zip(
            records.paths, records.pids, records.cams, records.times, records.splits, strict=True
        )
    }
    assert rows == {
        "west_3_250.png": (3, "west", 10.0, "train"),
        "east_3_300.png": (3, "east", 30.0, "train"),
        "west_4_500.png": (4, "west", 20.0, "query"),
        "east_4_320.png": (4, "east", 32.0, "gallery"),
        "east_0_10.png": (0, "east", 1.0, "gallery"),
    }
    # Its option, by name; another layout refuses it.
    assert sorted(read_dataset(root, layout="corridor", fps=5.0).times) == [
        2.0,
        50.0,
        60.0,
        64.0,
        100.0,
    ]
    with pytest.raises(ReIDError, match="layout 'manifest' takes no option 'fps'"):
        read_dataset(root, layout="manifest", fps=5.0)

    # Every verb that reads a dataset reads it: dataset info detects it, and --layout names it.
    assert main(["dataset", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"dataset: {root.resolve()} (corridor)" in out
    assert "cameras (images): 1 (west): 2, 2 (east): 3" in out
    assert (
        main(
            [
                "dataset",
                "export",
                str(root),
                "--layout",
                "corridor",
                "--out",
                str(tmp_path / "c.csv"),
            ]
        )
        == 0
    )
    exported = read_dataset(tmp_path / "c.csv")
    np.testing.assert_array_equal(exported.times, records.times)


def test_layout_help_lists_the_layouts_registered_at_run_time(registry, capsys):
    def layout_help(verb: list[str]) -> str:
        with pytest.raises(SystemExit) as exited:
            main([*verb, "--help"])
        assert exited.value.code == 0
        # argparse wraps help text: join the lines and their indentation back into one.
        return " ".join(capsys.readouterr().out.split())

    assert "(market1501, dukemtmc, msmt17, manifest, regex; default: detected)" in layout_help(
        ["dataset", "info"]
    )
    define_corridor_layout()
    for verb in (["dataset", "info"], ["extract"], ["st", "fit"]):
        assert "msmt17, corridor, manifest, regex; default: detected)" in layout_help(verb), verb


def test_registering_a_name_twice_is_refused_and_unknown_names_are_listed(registry, tmp_path):
    define_corridor_layout()
    with pytest.raises(ValueError, match="layout 'corridor' is already registered"):
        define_corridor_layout()
    with pytest.raises(ReIDError, match=r"--layout 'hallway': expected one of .*corridor"):
        read_dataset(tmp_path, layout="hallway")


def test_the_registry_refuses_what_no_layout_may_return(registry, tmp_path):
    define_corridor_layout()
    root = make_corridor(tmp_path / "corridor", pid_of_query=-7)
    with pytest.raises(ReIDError) as info:
        read_dataset(root)
    assert str(info.value) == (
        f"{root.resolve() / 'query' / 'west_-7_500.png'} has person id -7 (expected -1 for junk, "
        "0 for a distractor or a positive id)"
    )


def test_a_folder_no_layout_claims_lists_the_registered_ones(registry, tmp_path):
    define_corridor_layout()
    (tmp_path / "photos").mkdir()
    with pytest.raises(
        ReIDError, match=r"no known dataset layout \(tried .*corridor: corridor.txt"
    ):
        read_dataset(tmp_path / "photos")


def test_the_readme_layout_example_runs_as_written(registry, tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text.split("### Your own camera network, as a layout", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    mall = tmp_path / "my_mall"
    for camera, split, names in [
        ("entrance", "train", ["0001_100.jpg", "0002_150.jpg"]),
        ("entrance", "query", ["0003_900.jpg"]),
        ("entrance", "gallery", ["0002_400.jpg"]),
        ("lobby", "train", ["0001_700.jpg"]),
        ("lobby", "query", ["0002_950.jpg"]),
        ("lobby", "gallery", ["0003_1200.jpg", "0000_50.jpg"]),
    ]:
        write_images(mall / camera / split, names)
    (mall / "mall.txt").write_text("entrance\nlobby\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out == "entrance 2\n"
    assert main(["dataset", "info", "my_mall", "--json"]) == 0
    assert '"layout": "mall"' in capsys.readouterr().out


@pytest.mark.parametrize(
    "name",
    [
        "layouts.base",
        "layouts.registry",
        "layouts.market",
        "layouts.regex",
        "layouts.manifest",
        "summary",
        "image_size",
        "images",
        "records",
        "market_time",
    ],
)
def test_docstring_examples_run(name):
    import doctest
    import importlib

    module = importlib.import_module(f"mtmct_reid.data.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
