"""Meet a model before reading its numbers: ``magicoder-chat`` (terminal) and ``magicoder-demo``
(Gradio, up to two models side by side).

Both format instructions with :func:`magicoder.prompts.format_prompt` and decode with
:func:`magicoder.evaluation.generation.greedy_generate_kwargs`, as evaluation does, so what they
show is what EvalPlus scored.
"""
