"""What a user gets from `import hrm_rl`: registered ids and the shipped configs."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import resources
from pathlib import Path

import gymnasium as gym
import pytest
from omegaconf import OmegaConf

import hrm_rl


def test_import_registers_the_sudoku_ids():
    for env_id, side in [
        ("hrm_rl/Sudoku-v0", 9),
        ("hrm_rl/Sudoku4x4-v0", 4),
        ("hrm_rl/Sudoku6x6-v0", 6),
    ]:
        env = gym.make(env_id)
        assert env.observation_space["board"].shape == (side * side,)
        assert env.action_space.n == side**3


def python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_model_loads_without_gymnasium_or_any_puzzle_family():
    loaded = python(
        "import sys, hrm_rl.models\n"
        "print('gymnasium' in sys.modules, 'hrm_rl.envs.sudoku.rules' in sys.modules)"
    )
    assert loaded == "False False"


def test_the_agents_load_without_the_entry_points_process_group_code():
    loaded = python(
        "import sys, hrm_rl.agents.ppo, hrm_rl.agents.supervised\n"
        "print(sorted(m for m in sys.modules if m in ('hrm_rl.distributed', 'hrm_rl.train')))"
    )
    assert loaded == "[]"


@pytest.mark.parametrize(
    "imports", ["import hrm_rl, gymnasium as gym", "import gymnasium as gym, hrm_rl"]
)
def test_the_ids_are_registered_whichever_is_imported_first(imports):
    code = f"{imports}\nprint(gym.make('hrm_rl/Maze7x7-v0').observation_space['board'].shape)"
    assert python(code) == "(49,)"


ENTRY_POINTS = ("hrm_rl.train", "hrm_rl.evaluate", "hrm_rl.bench")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement of ``path`` names, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_entry_point_imports_another():
    """train, evaluate and bench share code through hrm_rl.build & co., never through each other."""
    package = Path(hrm_rl.__file__).resolve().parent
    sources = {
        "hrm_rl.train": [package / "train.py"],
        "hrm_rl.evaluate": [package / "evaluate.py"],
        "hrm_rl.bench": sorted((package / "bench").glob("*.py")),
    }
    assert all(paths and all(p.is_file() for p in paths) for paths in sources.values())
    crossings = []
    for entry, paths in sources.items():
        others = [other for other in ENTRY_POINTS if other != entry]
        for path in paths:
            for module in sorted(imported_modules(path)):
                if any(module == other or module.startswith(other + ".") for other in others):
                    crossings.append(f"{path.name} ({entry}) imports {module}")
    assert not crossings, "\n".join(crossings)


def test_configs_ship_as_package_data():
    configs = resources.files("hrm_rl.configs")
    assert (configs / "config.yaml").is_file()
    for name in ("sudoku", "sudoku4x4", "sudoku6x6"):
        assert (configs / "env" / f"{name}.yaml").is_file()
    assert hrm_rl.__version__


def test_every_source_package_is_listed_for_installation():
    """`pip install .` (not only -e) ships every package: pyproject lists each folder explicitly."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (root / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(root / folder)
            found.add(".".join([name, *relative.parts]))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_every_env_config_spells_out_the_front_ends_reward_and_grid_defaults():
    from hrm_rl.envs.registration import ENV_DEFAULTS
    from hrm_rl.envs.transition import MAX_SEGMENTS, MISTAKE_REWARD, SHAPING, SOLVE_BONUS

    defaults = {
        "solve_bonus": SOLVE_BONUS,
        "mistake_reward": MISTAKE_REWARD,
        "shaping": SHAPING,
        "max_segments": MAX_SEGMENTS,
    }
    assert {key: ENV_DEFAULTS[key] for key in defaults} == defaults
    env_configs = resources.files("hrm_rl.configs") / "env"
    names = sorted(p.name for p in env_configs.iterdir() if p.name.endswith(".yaml"))
    assert "sudoku.yaml" in names and "maze7x7.yaml" in names
    for name in names:
        config = OmegaConf.load(str(env_configs / name))
        assert {key: config[key] for key in defaults} == defaults, name
