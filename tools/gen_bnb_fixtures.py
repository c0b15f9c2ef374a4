#!/usr/bin/env python3
"""bitsandbytes fixtures for qconvert's bnb import/export (tests/converter/test_bnb_*.cpp).

What it writes (OUT_DIR defaults to tests/goldens/bnb)
------------------------------------------------------
  llama_src/                 a small random fp32 LlamaForCausalLM (config.json, model.safetensors,
                             generation_config.json) as transformers' save_pretrained writes it
  <model>_<kind>/            for model in {llama, gpt2} and kind in {nf4, nf4dq, fp4, int8}: the
                             folder transformers + bitsandbytes write with
                             AutoModelForCausalLM.from_pretrained(SRC, quantization_config=
                             BitsAndBytesConfig(...), device_map="cpu", dtype=float32)
                             .save_pretrained(DIR) -- config.json (with quantization_config),
                             model.safetensors (packed U8 weights, absmax, quant_map, nested_*,
                             quant_state.bitsandbytes__* / I8 weight + SCB + weight_format),
                             generation_config.json; plus
      logits.f32             raw little-endian float32 [n_prompt, vocab]: ONE fp32 forward pass
                             over `prompt_ids` of the source model whose quantized Linear weights
                             were replaced by bitsandbytes' own dequantization of the folder's
                             tensors (bnb.functional.dequantize_4bit with QuantState.from_dict;
                             INT8: CB * SCB * 7.874015718698502e-3), read back from the folder
      golden.json            {"model", "kind", "prompt_ids", "logits_shape", versions}
The gpt2 source is tests/goldens/families/gpt2 (tied head, Conv1D weights).

Export check (not run by CI, which has no torch; results are recorded in the report)
------------------------------------------------------------------------------------
  gen_bnb_fixtures.py --check-export OUR_DIR REF_DIR
compares a folder written by `qconvert X.qmodel --to bnb -o OUR_DIR` with transformers' own
REF_DIR: every tensor name, dtype and shape; the quant_state JSON bytes; config.json's
quantization_config; then loads both with AutoModelForCausalLM.from_pretrained(DIR) (no
quantization argument, CPU) and compares the logits of the fixed prompt. Exit status 1 on any
difference.

Run: /tmp/tv/bin/python tools/gen_bnb_fixtures.py [OUT_DIR]
(needs torch, transformers, bitsandbytes >= 0.49, accelerate; everything on the CPU).
"""

import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMPT = [5, 17, 99, 3, 42, 128, 7, 250, 64, 11, 200, 33]
KINDS = {
    "nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32),
    "nf4dq": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                  bnb_4bit_compute_dtype=torch.float32),
    "fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32),
    "int8": dict(load_in_8bit=True),
}


def make_llama_src(out):
    from transformers import AutoModelForCausalLM, LlamaConfig
    torch.manual_seed(1234)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():  # weights large enough that the quantization matters
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 2.0 / p.shape[1] ** 0.5 if "embed" not in name else 0.5)
            else:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    if os.path.exists(out):
        shutil.rmtree(out)
    model.save_pretrained(out)


def dequantized_state(folder):
    """{module weight name: fp32 tensor} from the folder's bnb tensors, by bitsandbytes itself."""
    import bitsandbytes.functional as F
    from safetensors.torch import load_file
    sd = load_file(os.path.join(folder, "model.safetensors"))
    out = {}
    for key in sd:
        if ".quant_state.bitsandbytes__" in key:
            w = key.split(".quant_state.")[0]
            qs = {k[len(w) + 1:]: v for k, v in sd.items() if k.startswith(w + ".") and k != w}
            state = F.QuantState.from_dict(qs, device=torch.device("cpu"))
            out[w] = F.dequantize_4bit(sd[w], state).float()
        elif key.endswith(".SCB"):
            w = key[:-len(".SCB")] + ".weight"
            out[w] = sd[w].float() * sd[key].float()[:, None] * 7.874015718698502e-3
    return out


def reference_logits(src, folder):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    deq = dequantized_state(folder)
    params = dict(model.named_parameters())
    conv1d = model.config.model_type == "gpt2"
    with torch.no_grad():
        for name, w in deq.items():
            p = params[name]
            if conv1d:
                w = w.t()  # bnb holds Conv1D weights as [out, in]; the module keeps [in, out]
            assert p.shape == w.shape, (name, p.shape, w.shape)
            p.copy_(w)
        return model(torch.tensor([PROMPT])).logits[0].float().numpy()


def quantize_with_transformers(src, kind, out):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    q = BitsAndBytesConfig(**KINDS[kind])
    model = AutoModelForCausalLM.from_pretrained(src, quantization_config=q, device_map="cpu", dtype=torch.float32)
    if os.path.exists(out):
        shutil.rmtree(out)
    model.save_pretrained(out)


def generate(out_dir):
    import bitsandbytes
    import transformers
    os.makedirs(out_dir, exist_ok=True)
    llama_src = os.path.join(out_dir, "llama_src")
    make_llama_src(llama_src)
    sources = {"llama": llama_src, "gpt2": os.path.join(ROOT, "tests/goldens/families/gpt2")}
    for model_name, src in sources.items():
        for kind in KINDS:
            folder = os.path.join(out_dir, f"{model_name}_{kind}")
            quantize_with_transformers(src, kind, folder)
            logits = reference_logits(src, folder)
            logits.astype("<f4").tofile(os.path.join(folder, "logits.f32"))
            with open(os.path.join(folder, "golden.json"), "w") as f:
                json.dump({"model": model_name, "kind": kind, "source": os.path.relpath(src, ROOT),
                           "prompt_ids": PROMPT, "logits_shape": list(logits.shape),
                           "transformers_version": transformers.__version__,
                           "bitsandbytes_version": bitsandbytes.__version__,
                           "torch_version": torch.__version__}, f, indent=1)
            print(f"{folder}: logits {logits.shape}, |logits|max {np.abs(logits).max():.3f}")


def check_export(ours, ref):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM
    ok = True

    def tensors(d):
        out = {}
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)
                out[k] = t
        return out

    a, b = tensors(ours), tensors(ref)
    if sorted(a) != sorted(b):
        ok = False
        print("names differ: only ours", sorted(set(a) - set(b)), "only transformers", sorted(set(b) - set(a)))
    n_same_bytes = 0
    for k in sorted(set(a) & set(b)):
        if a[k].dtype != b[k].dtype or tuple(a[k].shape) != tuple(b[k].shape):
            ok = False
            print(f"{k}: ours {a[k].dtype} {tuple(a[k].shape)}, transformers {b[k].dtype} {tuple(b[k].shape)}")
        elif "quant_state" in k and bytes(a[k].numpy()) != bytes(b[k].numpy()):
            ok = False
            print(f"{k}: JSON differs: {bytes(a[k].numpy())!r} vs {bytes(b[k].numpy())!r}")
        elif torch.equal(a[k].view(torch.uint8) if a[k].dim() else a[k], b[k].view(torch.uint8) if b[k].dim() else b[k]):
            n_same_bytes += 1
    qa = json.load(open(os.path.join(ours, "config.json")))["quantization_config"]
    qb = json.load(open(os.path.join(ref, "config.json")))["quantization_config"]
    if qa != qb:
        ok = False
        print("quantization_config differs:", qa, qb)
    logits = []
    for d in (ours, ref):
        model = AutoModelForCausalLM.from_pretrained(d, device_map="cpu")
        model.eval()
        with torch.no_grad():
            logits.append(model(torch.tensor([PROMPT])).logits[0].float())
    diff = (logits[0] - logits[1]).abs().max().item()
    print(f"{ours} vs {ref}: {len(a)} tensors, names/dtypes/shapes {'equal' if ok else 'DIFFER'}, "
          f"{n_same_bytes}/{len(a)} tensors byte-identical, reload logits max |diff| {diff:.3g}")
    return ok and diff <= 1e-3


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--check-export":
        sys.exit(0 if check_export(sys.argv[2], sys.argv[3]) else 1)
    generate(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/goldens/bnb"))


if __name__ == "__main__":
    main()
