"""Plugin modules listed under a pipeline's ``plugins:`` load from beside the pipeline file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_ai import Engine, PipelineError, PluginError, read_pipeline

PLUGIN = '''
from hybrid_ai import BaseStage, NewFact, hookimpl


class Shout(BaseStage):
    produces = ("shout",)

    def process(self, view):
        return [NewFact("shout", {"label": view.case.text.upper()})]


@hookimpl
def hybrid_ai_stages():
    return {"shout": Shout}
'''


def test_a_trusted_plugin_beside_the_pipeline_needs_no_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "beside_plugin_mod.py").write_text(PLUGIN)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("plugins: [beside_plugin_mod]\npipeline: {stage: shout}\n")
    with Engine.from_yaml(pipeline, trust_code=True) as engine:
        result = engine.run("hey")
    assert [f.data["label"] for f in result.of("shout")] == ["HEY"]


def test_code_beside_an_untrusted_pipeline_is_not_run(tmp_path: Path) -> None:
    # A pipeline file is data: naming a module beside it must not be enough to execute it.
    marker = tmp_path / "ran.txt"
    (tmp_path / "beside_plugin_mod3.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n" + PLUGIN)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("plugins: [beside_plugin_mod3]\npipeline: {stage: shout}\n")
    with pytest.raises(PluginError, match="--trust-code") as info:
        Engine.from_yaml(pipeline)
    assert "beside the pipeline file" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(("source", "message"), [
    ("raise RuntimeError('half-written')\n", "failed while importing: RuntimeError"),
    ("def broken(:\n", "failed while importing: SyntaxError"),
    ("VALUE = 1\n", "holds no hybrid-ai hooks"),
])
def test_a_plugin_that_fails_or_registers_nothing_is_a_plugin_error(
        tmp_path: Path, source: str, message: str) -> None:
    name = f"beside_bad_{abs(hash(source)) % 10**6}"
    (tmp_path / f"{name}.py").write_text(source)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"plugins: [{name}]\npipeline: {{stage: decide}}\n")
    with pytest.raises(PluginError, match=message):
        Engine.from_yaml(pipeline, trust_code=True)


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "my-plugin", ".relative"])
def test_a_plugin_name_must_be_a_module_name(tmp_path: Path, name: str) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"plugins: [{name!r}]\npipeline: {{stage: decide}}\n")
    with pytest.raises(PluginError, match="not a module name"):
        Engine.from_yaml(pipeline, trust_code=True)


def test_a_missing_plugin_module_names_where_it_looked(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("plugins: [no_such_plugin_mod]\npipeline: {stage: shout}\n")
    with pytest.raises(PluginError, match="could not be imported"):
        Engine.from_yaml(pipeline, trust_code=True)


def test_unknown_stage_after_plugins_load_is_a_pipeline_error(tmp_path: Path) -> None:
    (tmp_path / "beside_plugin_mod2.py").write_text(PLUGIN)
    spec = read_pipeline("inline.yaml", base_dir=tmp_path, trust_code=True,
                         text="plugins: [beside_plugin_mod2]\npipeline: {stage: whisper}\n")
    with pytest.raises(PipelineError, match="shout"):
        Engine(spec)
