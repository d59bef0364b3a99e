import os
import sys

import pytest

# Two cores are shared by the suite; one thread per test process keeps timings sane and results stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The console tests draw at a fixed size in a known terminal, whatever the user's shell says:
# NO_COLOR (a convention many users set) turns Textual monochrome, and the TEXTUAL_* variables
# change the theme, the animations and the filters. Subprocesses started by tests inherit this.
CONSOLE_ENV = {"TERM": "xterm-256color", "COLORTERM": "truecolor", "COLUMNS": "80", "LINES": "24"}
CONSOLE_ENV_UNSET = (
    "NO_COLOR",
    "FORCE_COLOR",
    "TEXTUAL_THEME",
    "TEXTUAL_ANIMATIONS",
    "TEXTUAL_FILTERS",
    "TEXTUAL_COLOR_SYSTEM",
    "TEXTUAL_DRIVER",
    "TEXTUAL_PRESS",
    "TEXTUAL_SCREENSHOT",
    "TEXTUAL_FPS",
    "TEXTUAL_DIM_FACTOR",
    "TEXTUAL_SMOOTH_SCROLL",
    "ESCDELAY",
)
# Textual read its TEXTUAL_* variables when the snapshot plugin imported it, before this file:
# these are the values it reads from an empty environment (the ones App reads at start-up).
TEXTUAL_DEFAULTS = {"TEXTUAL_ANIMATIONS": "full", "FILTERS": "", "COLOR_SYSTEM": "auto"}


@pytest.fixture(autouse=True)
def _console_env(monkeypatch):
    for name in CONSOLE_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in CONSOLE_ENV.items():
        monkeypatch.setenv(name, value)
    import textual.constants

    for name, value in TEXTUAL_DEFAULTS.items():
        monkeypatch.setattr(textual.constants, name, value)
    yield


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test gets its own runs folder and data cache; nothing reads ./runs or $HOME."""
    monkeypatch.setenv("CNNLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    # auto precision and layout by the rule, unmeasured: a probe per run would cost seconds
    # (tests/training/test_autotune.py turns the probe on and gives it its own cache folder).
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cnnlab-cache"))
    monkeypatch.setenv("CNNLAB_AUTOTUNE", "off")
    yield


@pytest.fixture
def fake_trainer(monkeypatch):
    """Install tests.fake_runs.FakeTrainer as engine.training.trainer: `fake_trainer(end="finish")`."""
    import engine.training
    from tests.fake_runs import FakeTrainer

    def install(**kwargs) -> FakeTrainer:
        fake = FakeTrainer(**kwargs)
        monkeypatch.setitem(sys.modules, "engine.training.trainer", fake)
        monkeypatch.setattr(engine.training, "trainer", fake, raising=False)
        return fake

    return install


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
