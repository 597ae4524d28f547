"""Who am I among the training processes: a small context read from torchrun's environment.

torchrun (and `srun` with the same variables) sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT. One plain process is world size 1: every method below still works (barrier and
all-reduce are no-ops), so the training loop reads the same under 1 or N processes.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    backend: str | None = None  # gloo | nccl when a process group is up

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self, local: bool = True):
        """The main process (of this machine, with local=True) runs the block first, the others after
        it: one process decodes the image cache, the rest find it on disk."""
        first = self.local_rank == 0 if local else self.is_main
        if not first:
            self.barrier()
        yield
        if first:
            self.barrier()

    def all_reduce_sum(self, values: list[float], device: torch.device | None = None) -> list[float]:
        """Sums over all processes (float64, so counts stay exact)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device or self.device_for_collectives())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process if it is True on any one (a stop request seen by one rank stops all)."""
        return bool(self.all_reduce_sum([1.0 if flag else 0.0])[0]) if self.active else flag

    def broadcast(self, obj):
        """The main process's `obj`, on every process."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device_for_collectives())
        return box[0]

    def all_gather(self, obj) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every process."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather_rows(self, t: torch.Tensor, n: int) -> torch.Tensor:
        """Rows i of a length-n array are computed by rank i % world_size (a strided shard, `shard()`);
        returns all n rows, in order, on every process."""
        if not self.active:
            return t
        per = -(-n // self.world_size)
        pad = torch.zeros((per - t.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
        dev = self.device_for_collectives()
        parts = [torch.empty((per, *t.shape[1:]), dtype=t.dtype, device=dev) for _ in range(self.world_size)]
        dist.all_gather(parts, torch.cat([t, pad]).to(dev))
        out = torch.empty((n, *t.shape[1:]), dtype=t.dtype)
        for r, p in enumerate(parts):
            out[r::self.world_size] = p[:len(range(r, n, self.world_size))].cpu()
        return out

    def shard(self, n: int) -> range:
        """This process's indices of n items, every one counted once (rank, rank + world, ...)."""
        return range(self.rank, n, self.world_size)

    def device_for_collectives(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def from_env(device_type: str = "cpu", timeout_s: float = 1800.0) -> DistContext:
    """Read torchrun's variables and, for more than one process, join the process group (gloo on the CPU,
    nccl on CUDA). `timeout_s` bounds every collective: a dead peer ends the run with an error, never a hang."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = DistContext(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                      world_size=world, local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
    if world > 1:
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ctx.local_rank)
        if not dist.is_initialized():
            timeout = datetime.timedelta(seconds=timeout_s)
            store = _attempt_store(ctx, timeout)
            if store is None:
                dist.init_process_group(backend, timeout=timeout)
            else:
                dist.init_process_group(backend, timeout=timeout, store=store, rank=ctx.rank,
                                        world_size=ctx.world_size)
        ctx.backend = backend
    return ctx


def _attempt_store(ctx: DistContext, timeout: datetime.timedelta):
    """Under torchrun, a store whose keys are private to this restart attempt.

    torchrun's agent keeps one TCPStore for the whole job, and with --max-restarts the restarted workers
    find the dead attempt's keys in it: gloo then reads a dead peer's address and fails to connect (seen
    with torch 2.14 on the CPU: the first restart timed out in connectFullMesh). Prefixing every key with
    the attempt number (TORCHELASTIC_RESTART_COUNT) keeps each attempt's rendezvous its own.
    None outside torchrun's agent store: init_process_group's env:// default then applies."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "MASTER_ADDR" not in os.environ:
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), ctx.world_size,
                          is_master=False, timeout=timeout)
    return dist.PrefixStore(f"transferlearn/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def threads_per_process(ctx: DistContext) -> int | None:
    """N processes on one machine share its cores: each gets cores / N threads, so they do not
    oversubscribe (torchrun sets OMP_NUM_THREADS=1 for each worker otherwise). None: leave as is."""
    if ctx.local_world_size <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // ctx.local_world_size)
