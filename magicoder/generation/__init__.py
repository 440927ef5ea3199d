"""OSS-Instruct generation: seed snippets, the teacher client, response parsing, the pipeline.

``magicoder-generate`` (``conf/generate.yaml``) runs :func:`magicoder.generation.app.
run_generate`; the pieces are importable on their own and have no import-time side effects.
"""
