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


def test_a_plugin_beside_the_pipeline_needs_no_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "beside_plugin_mod.py").write_text(PLUGIN)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("plugins: [beside_plugin_mod]\npipeline: {stage: shout}\n")
    with Engine.from_yaml(pipeline) as engine:
        result = engine.run("hey")
    assert [f.data["label"] for f in result.of("shout")] == ["HEY"]


def test_a_missing_plugin_module_names_where_it_looked(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("plugins: [no_such_plugin_mod]\npipeline: {stage: shout}\n")
    with pytest.raises(PluginError, match="beside the pipeline file"):
        Engine.from_yaml(pipeline)


def test_unknown_stage_after_plugins_load_is_a_pipeline_error(tmp_path: Path) -> None:
    (tmp_path / "beside_plugin_mod2.py").write_text(PLUGIN)
    spec = read_pipeline("inline.yaml", base_dir=tmp_path,
                         text="plugins: [beside_plugin_mod2]\npipeline: {stage: whisper}\n")
    with pytest.raises(PipelineError, match="shout"):
        Engine(spec)
