#!/usr/bin/env python3
"""Peer anchor for bench_kernels: PyTorch's int4 weight-only kernel (tinygemm,
torch.ops.aten._weight_int4pack_mm, group size 64) at the same GEMV shapes (m = 1, bf16), timed
the same way: a CUDA graph of back-to-back launches rotating over weight copies larger than 3x L2,
median of many replays, CUDA events; Python overhead excluded. Prints the same markdown table.

Packing (torch >= 2.5, incl. 2.11): _convert_weight_to_int4pack takes a uint8 [n, k/2] tensor,
two 4-bit values per byte (element 2j in the high nibble), and innerKTiles (2, 4 or 8); scales and
zeros are one bf16 tensor [k/group, n, 2]. Older torch took int32 [n, k]; we try that as a fallback.
Effective bytes = packed weights (n*k/2) + scales and zeros (k/group * n * 2 * 2 bytes).
Usage: python3 tools/bench_peer_int4.py [--quick] [--read-gbs GBS]
"""
import argparse
import statistics
import sys

import torch

SHAPES = [(4096, 4096, "q/o proj"), (1024, 4096, "k/v proj"), (14336, 4096, "gate/up"),
          (4096, 14336, "down"), (128256, 4096, "lm_head")]
GROUP = 64
INNER_K_TILES = 8


def pack_weight(n, k, device):
    q = torch.randint(0, 16, (n, k), dtype=torch.int32, device=device)
    try:
        packed_u8 = ((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8)
        return torch._convert_weight_to_int4pack(packed_u8, INNER_K_TILES)
    except RuntimeError:
        return torch._convert_weight_to_int4pack(q, INNER_K_TILES)


def read_bandwidth(device, replays):
    buf = torch.randint(-2**31, 2**31 - 1, (2**29,), dtype=torch.int32, device=device)  # 2 GiB
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(replays + 3):
        start.record()
        buf.sum()
        stop.record()
        stop.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(stop))
    return buf.numel() * 4 / (statistics.median(times) * 1e-3) / 1e9


def time_graph(fn, launches, replays):
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for i in range(3):  # warm-up outside the graph (tinygemm picks its config lazily)
            fn(i)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for i in range(launches):
            fn(i)
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(replays):
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return 1e3 * statistics.median(times) / launches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--read-gbs", type=float, default=0.0,
                    help="device read bandwidth (GB/s) from bench_kernels; measured here if 0")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_peer_int4: no CUDA device")
    device = torch.device("cuda")
    replays = 7 if args.quick else 50
    props = torch.cuda.get_device_properties(device)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    read_gbs = args.read_gbs or read_bandwidth(device, replays)
    print(f"# PyTorch int4 weight-only GEMV (torch {torch.__version__}, group {GROUP}, innerKTiles {INNER_K_TILES})\n")
    print(f"device: {props.name}; read bandwidth used for %: {read_gbs:.0f} GB/s; median of {replays} graph replays\n")
    print("| shape n x k | layer | weights | time us | GB/s (weights+scales) | % of read BW |")
    print("|---|---|---|---|---|---|")
    for n, k, what in SHAPES:
        nbytes = n * k // 2 + (k // GROUP) * n * 2 * 2
        copies = max(1, -(-3 * l2 // nbytes))
        weights = [pack_weight(n, k, device) for _ in range(copies)]
        scales = [(torch.rand(k // GROUP, n, 2, device=device) + 0.5).to(torch.bfloat16) for _ in range(copies)]
        x = (torch.rand(1, k, device=device) * 2 - 1 + 1e-3).to(torch.bfloat16)
        launches = copies * max(1, -(-20 // copies))

        def fn(i):
            j = i % copies
            return torch.ops.aten._weight_int4pack_mm(x, weights[j], GROUP, scales[j])

        us = time_graph(fn, launches, replays)
        gbs = nbytes / (us * 1e-6) / 1e9
        print(f"| {n} x {k} | {what} | int4 tinygemm g{GROUP} | {us:.2f} | {gbs:.0f} | {100 * gbs / read_gbs:.1f} |",
              flush=True)
        del weights, scales
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
