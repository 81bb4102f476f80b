"""Distributed training on torch.distributed with gloo (2 CPU processes)."""

import socket

import pytest
import torch.multiprocessing as mp

from recbole_diffrec.errors import DataError
from recbole_diffrec.launcher import collect_results, run_distributed
from recbole_diffrec.pipeline import prepare, run
from recbole_diffrec.settings import SettingError

pytestmark = pytest.mark.slow  # end-to-end: whole runs, subprocesses

SMALL = {"show_progress": False, "steps": 5, "dims_dnn": [64], "epochs": 10, "eval_step": 5, "eval_batch_users": 500}
# Documented tolerance: 2 ranks see the same global batches in a different shuffle, so metrics agree with
# one process up to run-to-run noise: |NDCG@10 difference| < 0.03 on this short ml-100k run.
TOLERANCE = 0.03


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _replica_state(rank, port, workdir, ema_decay, queue):
    import os

    os.chdir(workdir)
    config_dict = {**SMALL, "epochs": 2, "ema_decay": ema_decay, "local_rank": rank, "world_size": 2, "nproc": 2,
                   "offset": 0, "ip": "127.0.0.1", "port": port}
    _, (train, valid, _), model, trainer = prepare("DiffRec", config_dict=config_dict)
    trainer.fit(train, valid, saved=False, show_progress=False)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}  # plain arrays: tensors would travel by fds that die with the process
    if trainer.weight_average is not None:  # between epochs the model holds the average, `held` the optimizer's weights
        state.update({f"optimizer_weights.{i}": t.numpy().copy() for i, t in enumerate(trainer.weight_average.held)})
    queue.put((rank, state))


def _one_rank_fails(rank, queue):
    if rank == 1:
        queue.put(SettingError("steps", 0, "must be >= 1"))
        return
    import time

    time.sleep(600)  # stands for a rank waiting in a collective for the one that failed


def test_a_setting_error_from_any_rank_stops_every_rank():
    import time

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    context = mp.start_processes(_one_rank_fails, args=(queue,), nprocs=2, join=False, start_method="spawn")
    start = time.monotonic()
    with pytest.raises(SettingError, match="^invalid setting steps=0: must be >= 1$"):
        collect_results(context, queue, 1)
    assert time.monotonic() - start < 120
    assert not any(process.is_alive() for process in context.processes)


@pytest.mark.parametrize("ema_decay", [0.0, 0.8])
def test_two_gloo_processes_keep_replicas_and_samplers_identical(workdir, ema_decay):
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    context = mp.start_processes(_replica_state, args=(_free_port(), str(workdir), ema_decay, queue), nprocs=2,
                                 join=False, start_method="spawn")
    states = dict(collect_results(context, queue, 2))
    assert set(states) == {0, 1}
    averaged = any(key.startswith("optimizer_weights.") for key in states[0])
    assert averaged == (ema_decay > 0)
    for key, value in states[0].items():
        assert (value == states[1][key]).all(), key
    assert states[0]["sampler.history_count"].sum() > 0


def test_two_process_metrics_match_single_process(workdir):
    single = run("DiffRec", config_dict=SMALL)["test_result"]
    double = run_distributed("DiffRec", config_dict=SMALL, nproc=2)["test_result"]
    assert abs(single["ndcg@10"] - double["ndcg@10"]) < TOLERANCE, (single, double)
    assert double["ndcg@10"] > 0.12


def _fault_in_every_rank(rank, queue):
    raise RuntimeError(f"blocker: a fault that is not a user's error, rank {rank}")


def test_a_failing_rank_raises_instead_of_hanging():
    # a fault (not a user's error) in every worker, before any result: the parent must raise, not wait
    from recbole_diffrec.launcher import collect_results

    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(_fault_in_every_rank, nprocs=2, join=False, start_method="spawn", args=(queue,))
    with pytest.raises(mp.ProcessRaisedException, match="blocker"):
        collect_results(context, queue, 1)


def test_an_unwritable_checkpoint_folder_reaches_the_parent_as_a_setting_error(workdir):
    (workdir / "blocker").write_text("a file where a folder is expected")
    with pytest.raises(SettingError, match="checkpoint_dir='blocker/saved': cannot hold this run's files"):
        run_distributed("DiffRec", config_dict={"show_progress": False, "checkpoint_dir": "blocker/saved"}, nproc=2)


def test_a_data_error_reaches_the_parent_as_itself(workdir):
    with pytest.raises(DataError, match="dataset 'no_such_dataset': no folder"):
        run_distributed("DiffRec", dataset="no_such_dataset", config_dict={"show_progress": False}, nproc=2)


def test_an_invalid_setting_reaches_the_parent_as_a_setting_error(workdir):
    with pytest.raises(SettingError) as err:
        run_distributed("DiffRec", config_dict={"show_progress": False, "noise_min": 0.02, "noise_max": 0.01},
                        nproc=2)
    assert (err.value.key, err.value.value) == ("noise_min", 0.02)
    assert str(err.value).startswith("invalid setting noise_min=0.02: must be below noise_max=0.01")
    assert not list(workdir.rglob("*.pth")), "no checkpoint: nothing trained"


def _evaluate_on_rank(rank, port, workdir, checkpoint, queue):
    import os

    from recbole_diffrec.training.checkpoint import load_checkpoint

    os.chdir(workdir)
    config_dict = {**SMALL, "eval_batch_users": 100, "local_rank": rank, "world_size": 2, "nproc": 2, "offset": 0,
                   "ip": "127.0.0.1", "port": port}
    _, (_, valid, test), _, trainer = prepare("DiffRec", config_dict=config_dict)
    trainer._load_model_state(load_checkpoint(checkpoint))
    queue.put((rank, trainer.evaluate(valid, load_best_model=False), trainer.evaluate(test, load_best_model=False),
               test.shard))


def test_a_distributed_evaluation_equals_one_process_on_the_same_weights(workdir):
    """943 users over 2 ranks: blocks of 472 and 471, no user repeated, the metrics a single process's."""
    result = run("DiffRec", config_dict={**SMALL, "epochs": 2})
    _, (_, valid, test), _, trainer = prepare("DiffRec", config_dict={**SMALL, "eval_batch_users": 100})
    from recbole_diffrec.training.checkpoint import load_checkpoint

    trainer._load_model_state(load_checkpoint(result["checkpoint"]))
    single = (trainer.evaluate(valid, load_best_model=False), trainer.evaluate(test, load_best_model=False))
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    context = mp.start_processes(_evaluate_on_rank, args=(_free_port(), workdir, result["checkpoint"], queue),
                                 nprocs=2, join=False, start_method="spawn")
    ranks = collect_results(context, queue, 2)
    assert sorted(r[3] for r in ranks) == [(0, 472), (472, 943)]
    for _, valid_result, test_result, _ in ranks:
        assert dict(valid_result) == dict(single[0]) and dict(test_result) == dict(single[1])


def test_torchrun_on_two_nodes_trains_tests_and_writes_once(workdir):
    """Two torchrun agents on localhost, one process each, as two machines would run them."""
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    port = _free_port()
    command = [str(torchrun), "--nnodes=2", "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}",
               str(Path(__file__).resolve().parent.parent / "run_recbole.py"), "--model=DiffRec", "--epochs=2",
               "--steps=5", "--dims_dnn=[64]", "--show_progress=False", "--eval_step=1"]
    nodes = [subprocess.Popen([*command[:2], f"--node_rank={rank}", *command[2:]], cwd=workdir, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:]
    assert "test: recall@10:" in outputs[0][0] and "test:" not in outputs[1][0]  # rank 0 reports
    assert len(list((workdir / "saved").glob("*.pth"))) == 1  # rank 0 writes, once


def test_a_distributed_run_resumes_into_new_files(workdir):
    settings = {**SMALL, "epochs": 2, "eval_step": 1, "resume_every": 1}
    first = run_distributed("DiffRec", config_dict=settings, nproc=2)
    best = workdir / first["checkpoint"]
    before = best.read_bytes()
    resumed = run_distributed("DiffRec", config_dict={**settings, "epochs": 4}, nproc=2, resume_file=str(best))
    assert resumed["checkpoint"] != first["checkpoint"] and (workdir / resumed["checkpoint"]).is_file()
    assert best.read_bytes() == before
    assert resumed["test_result"]["ndcg@10"] > 0


def test_fewer_evaluation_users_than_processes_is_refused_before_training(workdir):
    """One user: one validation and one test user for two processes, each of which evaluates a block."""
    folder = workdir / "data" / "one"
    folder.mkdir(parents=True)
    rows = [f"u1\ti{i}\t{i}" for i in range(12)] + ["u2\ti99\t0"]  # u2: one interaction, training only
    (folder / "one.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    settings = {"show_progress": False, "data_path": str(workdir / "data"),
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}}
    with pytest.raises(DataError, match="split has 1 users, fewer than the 2 processes"):
        run_distributed("DiffRec", dataset="one", config_dict=settings, nproc=2)
    assert not list(workdir.rglob("*.pth"))
