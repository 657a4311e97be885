"""The ``hybrid-ai`` command line (typer). Plugins add sub-commands through the
``hybrid_ai_cli_commands`` hook.

    hybrid-ai run examples/support-triage/pipeline.yaml --text "my card was stolen" --explain
    hybrid-ai batch PIPELINE --input in.jsonl --output out.jsonl
"""

from ._app import app, main

__all__ = ["app", "main"]
