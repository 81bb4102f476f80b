"""Distributed training on one machine: ``--nproc=N`` spawns N processes on torch.distributed (gloo on CPU,
nccl on GPUs, or ``dist_backend``). Across machines, ``torchrun`` starts the processes instead and
:class:`~recbole_diffrec.config.Config` reads the launcher's environment (docs/distributed.md)."""

from recbole_diffrec.errors import UserError
from recbole_diffrec.pipeline import DEFAULT_DATASET, run


def _distributed_worker(rank, nproc, port, model, dataset, config_file_list, config_dict, queue, resume_file=None):
    config_dict = {**(config_dict or {}), "local_rank": rank, "world_size": nproc, "nproc": nproc, "offset": 0,
                   "ip": "127.0.0.1", "port": port}
    try:
        result = run(model, dataset, config_file_list, config_dict, resume_file=resume_file)
    except UserError as err:
        # Before training, on any rank: the parent raises the first one it reads as itself and stops every
        # rank (an error escaping a worker would reach the parent only as a traceback text).
        queue.put(err)
        return
    if rank == 0:
        queue.put(result)


def collect_results(context, queue, count):
    """Read `count` results from `queue` while watching the processes of `context`, then join them.

    A process that fails raises here (`join` re-raises its error) instead of leaving the caller waiting on
    a result that never comes. An exception a worker puts in the queue is raised here as itself, once every
    worker has been stopped (one still running may be waiting for the failed one in a collective).
    """
    results = []
    while len(results) < count:
        if not queue.empty():
            item = queue.get()  # before joining: a large put blocks until it is read
            if isinstance(item, BaseException):
                for process in context.processes:
                    process.terminate()
                    process.join()
                raise item
            results.append(item)
        elif context.join(timeout=1) and queue.empty():
            raise RuntimeError(f"the worker processes exited after {len(results)} of {count} results")
    while not context.join():
        pass
    return results


def run_distributed(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, nproc=2,
                    port=None, resume_file=None):
    """Train with `nproc` processes on torch.distributed (gloo on CPU, nccl on GPUs, or `dist_backend`).

    Each rank takes a shard of every epoch's users (train_batch_size is the global batch), gradients are
    averaged over ranks, and the timestep samplers see every rank's losses, so they stay identical.
    With `resume_file`, every rank continues that checkpoint. Returns rank 0's result dict.
    """
    import socket

    import torch.multiprocessing as mp

    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    context = mp.start_processes(_distributed_worker, nprocs=nproc, join=False, start_method="spawn",
                                 args=(nproc, port, model, dataset, config_file_list, config_dict, queue, resume_file))
    return collect_results(context, queue, 1)[0]
