"""The docs say what the code does: every hook documented and tested; the tutorial works."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from progressor.core import hookspecs
from tests.conftest import PROGRAMS, ROOT, START, full_week

DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOK_TESTS = (ROOT / "tests" / "test_hooks.py").read_text(encoding="utf-8")
HOOKS = sorted(
    name
    for name, value in vars(hookspecs).items()
    if name.startswith("progressor_") and inspect.isfunction(value)
)


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 6


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_contract_a_reference_entry_and_a_test(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Every implementation is called" in doc, f"{hook}: say how results combine"
    assert f"\n### {hook}\n" in DOCS, f"{hook}: no entry in docs/plugins.md"
    assert f"def test_hook_{hook}(" in HOOK_TESTS, f"{hook}: no test_hook_{hook} in test_hooks.py"


def test_the_reference_has_no_stale_entries() -> None:
    documented = re.findall(r"^### (progressor_\w+)$", DOCS, flags=re.MULTILINE)
    assert sorted(documented) == HOOKS


def _tutorial_files() -> dict[str, str]:
    blocks = re.findall(r"```\w+ file=(\S+)\n(.*?)```", DOCS, flags=re.DOTALL)
    return dict(blocks)


def _progressor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("progressor")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "progressor"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_tutorial_plugin_works_verbatim(tmp_path: Path) -> None:
    files = _tutorial_files()
    assert set(files) == {"clinic_baseline.py", "pyproject.toml", "test_clinic_baseline.py"}
    package = tmp_path / "clinic-baseline"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = json.loads(_progressor("plugins", "--json", env=env).stdout)
    [row] = [r for r in listed if r["name"] == "high-baseline"]
    assert row["version"] == "0.1.0" and row["registered"] == {"safety rules": ["high-baseline"]}

    snippet = re.search(r"```toml\n(\[safety.high-baseline\]\n.*?)```", DOCS, re.DOTALL)
    assert snippet
    program = tmp_path / "my-back.toml"
    program.write_text(
        (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8") + "\n" + snippet.group(1),
        encoding="utf-8",
    )
    log = tmp_path / "anna.jsonl"
    rows = full_week(START, pain=5)
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")

    done = _progressor("next", str(program), "--log", str(log), "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {e["action"] for e in result["exercises"].values()} == {"hold"}
    assert {e["rule"] for e in result["exercises"].values()} == {"high-baseline"}
    assert "Hold: a session started at pain 5/10." in result["exercises"]["bridge"]["reason"]
    assert [f["code"] for f in result["flags"]] == ["review"]

    without = {**env, "PROGRESSOR_PLUGINS": ""}
    plain = _progressor(
        "next",
        str(PROGRAMS / "low-back-pain.toml"),
        "--log",
        str(log),
        "--format",
        "json",
        env=without,
    )
    assert json.loads(plain.stdout)["exercises"]["bridge"]["dose"]["reps"] == 6
    refused = _progressor("check", str(program), env=without)
    assert refused.returncode == 1 and "unknown safety rule 'high-baseline'" in refused.stderr

    tested = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(package / "test_clinic_baseline.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=package,
        timeout=300,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if "import progressor" in block
    ]
    (tmp_path / "programs").symlink_to(PROGRAMS)
    log = "\n".join(json.dumps(r) for r in full_week()) + "\n"
    (tmp_path / "anna.jsonl").write_text(log, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert isinstance(results, list) and len(results) == 1
    assert {d.action for d in results[0].decisions} == {"progress"}
