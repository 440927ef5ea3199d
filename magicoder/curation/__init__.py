"""Curation of generated instruction data: dedup, filters, decontamination, data report.

``magicoder-curate`` (``conf/curate.yaml``) runs :func:`magicoder.curation.app.run_curate`;
``magicoder-data-report`` (``conf/data-report.yaml``) runs
:func:`magicoder.curation.app.run_data_report`.
"""
