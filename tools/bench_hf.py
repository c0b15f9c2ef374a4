#!/usr/bin/env python3
"""Hugging Face transformers on the same synthetic checkpoint qmodel is benchmarked on (GPU machine).

Times what `qrun --bench` times, the way a transformers user runs it: load (from a warm page
cache), prefill = one forward over N random tokens (median of 3 after a warm-up), decode = greedy
`generate` of D new tokens after a 16-token prompt (min_new_tokens forces the full run), peak GPU
memory. --quant picks bf16 or, when `bitsandbytes` imports, nf4 / nf4-dq / fp4 / int8 quantized at
load (BitsAndBytesConfig, bf16 compute). Prints one JSON line (also to --json FILE).
"""
import argparse
import json
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", help="Hugging Face folder (config.json + safetensors)")
    ap.add_argument("--quant", default="bf16", choices=["bf16", "nf4", "nf4-dq", "fp4", "int8"])
    ap.add_argument("--prefill", default="128,512,2048", help="prompt lengths to time (comma separated)")
    ap.add_argument("--decode", type=int, default=256, help="greedy tokens to generate")
    ap.add_argument("--json", help="also write the JSON line to this file")
    a = ap.parse_args()

    try:
        import torch
        import transformers
    except ImportError as e:  # the GPU machine has both; say so clearly elsewhere
        print(f"bench_hf: {e}; needs torch and transformers", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench_hf: no CUDA device", file=sys.stderr)
        return 2

    kwargs = {"dtype": torch.bfloat16, "device_map": "cuda"}
    if a.quant != "bf16":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            print(f"bench_hf: --quant {a.quant} needs bitsandbytes, which is not installed", file=sys.stderr)
            return 3
        if a.quant == "int8":
            q = transformers.BitsAndBytesConfig(load_in_8bit=True)
        else:
            q = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=a.quant[:3],
                                                bnb_4bit_use_double_quant=a.quant.endswith("-dq"),
                                                bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["quantization_config"] = q

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model_dir, **kwargs)
    model.eval()
    torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    gen = torch.Generator(device="cpu").manual_seed(1)

    def timed(fn):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t

    prefill = []
    with torch.inference_mode():
        for n in [int(x) for x in a.prefill.split(",") if x.strip() and int(x) > 0]:
            ids = torch.randint(0, vocab, (1, n), generator=gen).cuda()
            times = [timed(lambda: model(ids, use_cache=False)) for _ in range(4)][1:]  # first = warm-up
            s = statistics.median(times)
            prefill.append({"tokens": n, "seconds": s, "tokens_per_second": n / s})

        prompt = torch.randint(0, vocab, (1, 16), generator=gen).cuda()
        common = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, **common)  # warm-up
        s = timed(lambda: model.generate(prompt, max_new_tokens=a.decode, min_new_tokens=a.decode, **common))
        # generate's time includes the 16-token prefill (a few ms at most, against seconds of decode).
        decode_tps = a.decode / s

    result = {"system": f"transformers {transformers.__version__} {a.quant}", "torch": torch.__version__,
              "load_seconds": load_s, "prefill": prefill, "decode_tokens": a.decode,
              "decode_tokens_per_second": decode_tps,
              "peak_gpu_bytes": torch.cuda.max_memory_allocated()}
    line = json.dumps(result)
    print(line)
    if a.json:
        with open(a.json, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
