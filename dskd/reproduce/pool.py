"""Running many jobs: in this process, or one worker process per device (``--gpus``), and the whole
``dskd reproduce`` pipeline (data, jobs, tables)."""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import traceback
from typing import Any, Callable, Optional, Sequence, Union

import torch

from ..distributed import barrier, dist_info
from .jobs import (DEFAULT_CHECKPOINT_EVERY, DEFAULT_OUT_DIR, DEFAULT_RUNS_DIR, Job, PathLike, ResultConflictError,
                   ensure_data, job_state, make_jobs, parse_categories, result_path, run_job)
from .tables import write_tables



def _worker(device: str, tasks: Any, results: Any, runner: Callable, opts: dict[str, Any]) -> None:
    """A worker process pinned to one device: run jobs from the queue until the sentinel (None)."""
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    while True:
        item = tasks.get()
        if item is None:
            return
        index, job = item
        try:
            out = runner(job, device=device, **opts)
            results.put((index, device, os.getpid(), "ok", out))
        except KeyboardInterrupt:  # Ctrl-C reaches every worker: stop, do not take the next job
            return
        except BaseException as err:  # report and take the next job; the main process lists failures
            text = f"{type(err).__name__}: {err}\n{traceback.format_exc()}"
            results.put((index, device, os.getpid(), "failed", text))



def run_jobs(
    jobs: Sequence[Job],
    *,
    devices: Optional[Sequence[str]] = None,
    runner: Optional[Callable[..., dict[str, Any]]] = None,
    mp_context: str = "spawn",
    **opts: Any,
) -> list[dict[str, Any]]:
    """Run jobs in this process (``devices`` None or one device), or one worker process per device.

    Workers take jobs from a shared queue, so a fast category frees its GPU for the next one. A job
    that fails is reported (``status`` 'failed', with the traceback) without stopping the others.
    ``runner`` (default :func:`run_job`) is called as ``runner(job, device=..., **opts)``; it must be
    a module-level function, since it travels to the workers.
    """
    runner = runner or run_job
    if not devices or len(devices) == 1:
        device = devices[0] if devices else None
        return [runner(job, device=device, **opts) for job in jobs]
    opts = {**opts, "progress": False} if runner is run_job else opts
    ctx = mp.get_context(mp_context)
    tasks, results = ctx.Queue(), ctx.Queue()
    for item in enumerate(jobs):
        tasks.put(item)
    for _ in devices:
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(d, tasks, results, runner, opts), name=f"dskd-worker-{d}")
             for d in devices]
    for p in procs:
        p.start()
    print(f"running {len(jobs)} jobs on {len(devices)} workers: {', '.join(devices)}", flush=True)
    out: list[Optional[dict[str, Any]]] = [None] * len(jobs)
    pending = len(jobs)
    try:
        while pending:
            try:
                index, device, pid, status, payload = results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if status == "ok":
                out[index] = {**payload, "device": device, "pid": pid}
            else:
                print(f"[{device}] {jobs[index].label} failed: {payload}", flush=True)
                out[index] = {"job": jobs[index].label, "category": jobs[index].category, "seed": jobs[index].seed,
                              "status": "failed", "error": payload, "device": device, "pid": pid}
            pending -= 1
    finally:
        for p in procs:
            p.join(timeout=5 if pending == 0 else 0.1)
            if p.is_alive():
                p.terminate()
                p.join()
    return [o if o is not None else {"job": j.label, "category": j.category, "seed": j.seed, "status": "failed",
                                     "error": "its worker process died"} for o, j in zip(out, jobs)]



def reproduce(
    benchmark: str,
    categories: Union[str, Sequence[str], None] = "all",
    seeds: Sequence[int] = (0,),
    *,
    epochs: Optional[int] = None,
    teacher: Optional[str] = None,
    device: str = "auto",
    data_root: Optional[str] = None,
    image_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    num_workers: Optional[int] = None,
    precision: Optional[str] = None,
    out_dir: PathLike = DEFAULT_OUT_DIR,
    runs_dir: PathLike = DEFAULT_RUNS_DIR,
    devices: Optional[Sequence[str]] = None,
    ddp: bool = False,
    download: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    n_examples: int = 6,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    mp_context: str = "spawn",
    eval_every: int = 0,
    rescore: bool = False,
) -> dict[str, Any]:
    """The whole pipeline for one benchmark: check/download data, run the jobs not done yet, write tables.

    ``rescore=True`` also re-evaluates the jobs already done, from their finished checkpoints
    (:func:`run_job`); a job whose checkpoint is gone trains again.

    Returns ``{"jobs": [summary per job], "tables": [paths], "failed": [labels]}``.
    """
    if ddp and devices and len(devices) > 1:
        raise ValueError("--ddp and --gpus exclude each other: DDP spreads one model over the torchrun ranks, "
                         "--gpus runs one category per GPU")
    cats = parse_categories(benchmark, categories)
    jobs = make_jobs(benchmark, cats, seeds, epochs=epochs, teacher=teacher, device=device, data_root=data_root,
                     image_size=image_size, batch_size=batch_size, num_workers=num_workers, precision=precision)
    states = {j.label: job_state(j, out_dir) for j in jobs}
    conflicts = [j for j in jobs if states[j.label] == "conflict"]
    if conflicts and not overwrite:
        paths = [str(result_path(out_dir, j.benchmark, j.category, j.seed)) for j in conflicts]
        raise ResultConflictError(f"results of a different configuration exist: {', '.join(paths)}; pass --overwrite "
                                  "to replace them or choose another --out-dir")
    todo = [j for j in jobs if rescore or states[j.label] != "done"]
    done = sum(state == "done" for state in states.values())
    print(f"dskd reproduce {benchmark}: {len(jobs)} jobs, {done} already done"
          + (" (rescored from their checkpoints)" if rescore and done else ""), flush=True)
    if todo:
        if dist_info().is_main:
            ensure_data(benchmark, sorted({j.category for j in todo}, key=str), data_root, download=download)
        barrier()
    opts = dict(out_dir=out_dir, runs_dir=runs_dir, checkpoint_every=checkpoint_every, n_examples=n_examples,
                progress=progress, ddp=ddp, overwrite=overwrite, eval_every=eval_every, rescore=rescore)
    if callbacks:
        opts["callbacks"] = callbacks
    summaries = [{"job": j.label, "category": j.category, "seed": j.seed, "status": "skipped (result exists)",
                  "result": str(result_path(out_dir, j.benchmark, j.category, j.seed))} for j in jobs if j not in todo]
    summaries += run_jobs(todo, devices=devices, mp_context=mp_context, **opts)
    tables = write_tables(out_dir, benchmark) if dist_info().is_main else []
    failed = [s["job"] for s in summaries if s.get("status") == "failed"]
    return {"jobs": summaries, "tables": [str(t) for t in tables], "failed": failed}
