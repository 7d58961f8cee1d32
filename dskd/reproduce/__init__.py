"""Full-scale reproduction of the paper's Tables 1 to 5 (Sec. 4.2): ``dskd reproduce``.

::

    dskd reproduce mt-defects                         # Table 5 and Fig. 7 (128 x 128, 200 epochs)
    dskd reproduce mvtec --category all               # Tables 1 and 2 (downloads MVTec AD if missing)
    dskd reproduce mvtec3d --category all             # Tables 3 and 4 (MVTec 3D-AD must be put in place)
    dskd reproduce mvtec --category all --gpus all    # one category per GPU, in parallel
    torchrun --standalone --nproc_per_node 4 -m dskd reproduce mvtec --category bottle --ddp
    dskd reproduce mvtec --tables-only                # rebuild the tables from the results present

The package has four parts:

* :mod:`~dskd.reproduce.jobs`: one job per (category, seed): train (the run store decides whether to
  train, resume, continue a shorter run or load a finished one), evaluate, draw, record
  ``<out-dir>/<benchmark>[/<category>]/seed<k>.json``. A result of a *different* config is never
  overwritten silently.
* :mod:`~dskd.reproduce.pool`: the jobs in this process, or one worker per device (``--gpus``: each
  takes the next job when it finishes one); ``ddp=True`` (``--ddp``, under torchrun) trains one model
  over all ranks instead, rank 0 evaluating and writing. :func:`reproduce` is the whole pipeline.
* :mod:`~dskd.reproduce.tables`: ``<out-dir>/<benchmark>/table<N>.json`` and ``.md``, the paper's table
  with its numbers beside this rebuild's, "—" and the command that fills a cell where no run exists.
* :mod:`~dskd.reproduce.report`: what the results chapter reads (the runs behind a table, gaps to the
  paper, example maps redrawn from a checkpoint).
"""
from .jobs import (
    BENCHMARKS, DEFAULT_CHECKPOINT_EVERY, DEFAULT_OUT_DIR, DEFAULT_RUNS_DIR, METRICS, PAPER_FIELDS, RESULT_SCHEMA,
    Job, ResultConflictError, carry_curve, deviations, ensure_data, job_state, make_jobs, paper_config,
    parse_categories, parse_devices, read_curve, read_result, reproduce_command, result_path, run_folder, run_job,
    save_figures, split_description,
)
from .pool import reproduce, run_jobs
from .report import (format_percent, paper_gaps, redraw_examples, run_rows, runs_markdown, seed_comparison,
                     seed_comparison_markdown)
from .tables import build_tables, collect_results, table_markdown, write_tables

__all__ = [
    "BENCHMARKS", "DEFAULT_CHECKPOINT_EVERY", "DEFAULT_OUT_DIR", "DEFAULT_RUNS_DIR", "METRICS", "PAPER_FIELDS",
    "RESULT_SCHEMA", "Job", "ResultConflictError", "carry_curve", "deviations", "ensure_data", "job_state",
    "make_jobs", "paper_config", "parse_categories", "parse_devices", "read_curve", "read_result",
    "reproduce_command", "result_path", "run_folder", "run_job", "save_figures", "split_description", "reproduce",
    "run_jobs", "format_percent", "paper_gaps", "seed_comparison", "seed_comparison_markdown", "redraw_examples",
    "run_rows", "runs_markdown", "build_tables",
    "collect_results", "table_markdown", "write_tables",
]
