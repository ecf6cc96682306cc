"""Model throughput and training memory under each gradient mode.

For each preset (the small CPU default and an HRM-sized model, 9×9 input) and each gradient mode it
times forward + backward of one segment from a mid-episode carry, and measures *training memory*:

* on CUDA, ``torch.cuda.max_memory_allocated`` over the forward and backward;
* on the CPU, which has no allocator statistics, the bytes a training step must hold at its peak:
  parameters + gradients + every tensor autograd saved for the backward pass (collected with
  ``torch.autograd.graph.saved_tensors_hooks``, counted once per storage, parameters excluded).
  This is the part that grows with the depth of the gradient graph, which is what the one-step
  gradient's O(1)-memory claim is about; transient buffers of no-grad applications are not in it.

The depth sweep then compares N = T = 1 with N = T = 4 for the same batch under every mode.
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

from hrm_rl.models.hrm import GRAD_MODES, HRM, HRMConfig

PRESETS = {
    # the small model a laptop CPU trains on (DESIGN: d = 64, a few layers, one-step gradient)
    "small": dict(d_model=64, num_heads=4, L_layers=1, H_layers=1, N=2, T=2, h_module="multicell"),
    # HRM's published size: d = 512, 8 heads, 4 + 4 layers, N = T = 2
    "hrm": dict(
        d_model=512, num_heads=8, L_layers=4, H_layers=4, N=2, T=2, h_module="hrm", multiple_of=256
    ),
}
BOARD = dict(num_positions=81, num_values=9)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m hrm_rl.bench model``."""
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--batch", type=int, nargs=2, default=[64, 8], metavar=("SMALL", "HRM"))
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--depth-preset", default="small", choices=list(PRESETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)


def _inputs(config: HRMConfig, batch: int, device: torch.device, seed: int):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(
        0, config.num_values + 1, (batch, config.num_positions), generator=generator
    )
    candidates = (
        torch.rand(batch, config.num_positions, config.num_values, generator=generator) < 0.4
    )
    return tokens.to(device), candidates.to(device)


def _segment_loss(model: HRM, tokens, carry, candidates) -> torch.Tensor:
    """A stand-in training loss touching every head and the selection log-probability."""
    out = model(tokens, carry, candidates)
    loss = out.move_logits.logsumexp(dim=1).mean() + out.value.pow(2).mean()
    loss = loss + out.grid_logits.pow(2).mean() - out.selection_log_prob.mean()
    return loss + sum(out.aux_losses.values(), torch.zeros((), device=tokens.device))


def training_memory_bytes(model: HRM, tokens, carry, candidates) -> dict[str, int]:
    """Peak training memory of one segment (see the module docstring for what is counted)."""
    device = tokens.device
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = _segment_loss(model, tokens, carry, candidates)
    loss.backward()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    result = {
        "saved_activation_bytes": sum(saved.values()),
        "parameter_bytes": param_bytes,
        "peak_bytes": 2 * param_bytes + sum(saved.values()),  # parameters + gradients + saved
    }
    if device.type == "cuda":
        torch.cuda.synchronize()
        result["peak_bytes"] = torch.cuda.max_memory_allocated()
    model.zero_grad(set_to_none=True)
    return result


def segments_per_second(model: HRM, tokens, carry, candidates, seconds: float) -> float:
    """Forward + backward segments (one sample = one segment) per second."""
    device = tokens.device
    _segment_loss(model, tokens, carry, candidates).backward()  # warm-up
    _sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 2:
        model.zero_grad(set_to_none=True)
        _segment_loss(model, tokens, carry, candidates).backward()
        steps += 1
    _sync(device)
    return steps * tokens.shape[0] / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(preset: str, grad: str, batch: int, args, **overrides) -> dict:
    """One row: a preset under one gradient mode (and optional N, T overrides)."""
    gc.collect()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    config = HRMConfig(**BOARD, **{**PRESETS[preset], "grad": grad, **overrides})
    model = HRM(config).to(device)
    tokens, candidates = _inputs(config, batch, device, args.seed)
    with torch.no_grad():  # a mid-episode carry: memory written, states not at their init
        carry = model(tokens, model.initial_carry(batch, device), candidates).carry
    memory = training_memory_bytes(model, tokens, carry, candidates)
    return {
        "preset": preset,
        "grad": grad,
        "N": config.N,
        "T": config.T,
        "batch": batch,
        "parameters": model.num_parameters(),
        "segments_per_second": segments_per_second(model, tokens, carry, candidates, args.seconds),
        **memory,
    }


def run(args: argparse.Namespace) -> dict:
    """All measurements of the model benchmark, in one run."""
    batches = dict(zip(PRESETS, args.batch, strict=True))
    rows = [
        measure(preset, grad, batches[preset], args)
        for preset in args.presets
        for grad in GRAD_MODES
    ]
    depth = []
    for grad in GRAD_MODES:
        shallow, deep = (
            measure(args.depth_preset, grad, batches[args.depth_preset], args, N=n, T=n)
            for n in (1, 4)
        )
        depth.append(
            {
                "grad": grad,
                "batch": shallow["batch"],
                "peak_bytes_N1_T1": shallow["peak_bytes"],
                "peak_bytes_N4_T4": deep["peak_bytes"],
                "ratio": deep["peak_bytes"] / shallow["peak_bytes"],
            }
        )
    return {
        "device": args.device,
        "memory_measure": "cuda max_memory_allocated"
        if torch.device(args.device).type == "cuda"
        else "parameters + gradients + tensors saved for backward",
        "rows": rows,
        "depth_preset": args.depth_preset,
        "depth": depth,
    }


def table(results: dict) -> str:
    """The results as plain-text tables."""
    mb = 1 / 2**20
    lines = [
        f"Model throughput and training memory on {results['device']} "
        f"(memory: {results['memory_measure']})",
        f"{'preset':>6} | {'grad':>10} | {'N,T':>4} | {'batch':>5} | {'params':>11} | "
        f"{'segments/s':>10} | {'peak MB':>8} | {'saved MB':>8}",
        "-" * 84,
    ]
    for r in results["rows"]:
        lines.append(
            f"{r['preset']:>6} | {r['grad']:>10} | {r['N']},{r['T']:>2} | {r['batch']:>5} | "
            f"{r['parameters']:>11,} | {r['segments_per_second']:>10,.1f} | "
            f"{r['peak_bytes'] * mb:>8.1f} | {r['saved_activation_bytes'] * mb:>8.1f}"
        )
    lines += [
        "",
        f"Depth: peak training memory of the {results['depth_preset']} preset, same batch",
        f"{'grad':>10} | {'N=T=1 MB':>9} | {'N=T=4 MB':>9} | {'ratio':>6}",
        "-" * 44,
    ]
    for r in results["depth"]:
        lines.append(
            f"{r['grad']:>10} | {r['peak_bytes_N1_T1'] * mb:>9.1f} | "
            f"{r['peak_bytes_N4_T4'] * mb:>9.1f} | {r['ratio']:>5.2f}x"
        )
    return "\n".join(lines)
