#!/usr/bin/env python3
"""Writes the PyTorch-checkpoint fixtures of tests/converter/test_torch_*.cpp into tests/goldens/torch/.

Run with a Python that has torch, transformers and safetensors (e.g. /tmp/tv/bin/python):
    python tools/gen_torch_fixtures.py

Outputs (all small, < 1.5 MB together):
  tiny_llama/st_{f32,f16,bf16}/        config.json + model.safetensors (reference conversions)
  tiny_llama/bin_{f32,f16,bf16}/       config.json + pytorch_model.bin (zip format) of the same weights
  tiny_llama/bin_sharded/              3 shards + pytorch_model.bin.index.json
  tiny_llama/bin_legacy/, bin_legacy_f16/  _use_new_zipfile_serialization=False
  tiny_llama/bin_zip64/                the zip re-packed with ZIP64 records (zipfile force_zip64)
  bloom/, gpt2_legacy/                 tests/goldens/families/{bloom,gpt2} re-saved as .bin
  hostile/*.bin                        hand-built hostile checkpoints (see HOSTILE below)
The .bin state dicts carry what real ones do: an int64 and a bool buffer (skipped by the reader),
tensors sharing one storage at different offsets, and a non-contiguous (transposed) view.
"""
import collections
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "goldens", "torch")
FAMILIES = os.path.join(ROOT, "tests", "goldens", "families")
MARKER = "/tmp/qmodel_torch_pwned_marker"


def tiny_llama_config():
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
        "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 64, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32", "hidden_act": "silu",
    }


def tiny_llama_weights():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(1234)
    cfg = tiny_llama_config()
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))
    return collections.OrderedDict((k, v.detach().clone().contiguous()) for k, v in model.state_dict().items())


def write_folder(path, config, files):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name, writer in files.items():
        writer(os.path.join(path, name))


def as_bin_state(sd, dtype):
    """The weights as torch would hold them: two tensors sharing a storage, a transposed view,
    plus int64/bool buffers."""
    out = collections.OrderedDict()
    names = list(sd)
    q = "model.layers.0.self_attn.q_proj.weight"
    k = "model.layers.0.self_attn.k_proj.weight"
    fused = torch.cat([sd[q].to(dtype), sd[k].to(dtype)])  # q and k share this storage
    for name in names:
        if name == q:
            out[name] = fused[: sd[q].shape[0]]
        elif name == k:
            out[name] = fused[sd[q].shape[0]:]
        elif name == "lm_head.weight":
            out[name] = sd[name].to(dtype).t().contiguous().t()  # same values, column-major view
            assert not out[name].is_contiguous()
        else:
            out[name] = sd[name].to(dtype)
    out["model.position_ids"] = torch.arange(64, dtype=torch.int64).unsqueeze(0)
    out["model.layers.0.self_attn.causal_mask"] = torch.ones(4, 4, dtype=torch.bool).tril()
    return out


def save_sharded(sd, path, n_shards):
    names = list(sd)
    per = (len(names) + n_shards - 1) // n_shards
    weight_map = {}
    for i in range(n_shards):
        shard = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
        part = collections.OrderedDict((n, sd[n].clone()) for n in names[i * per:(i + 1) * per])
        torch.save(part, os.path.join(path, shard))
        weight_map.update({n: shard for n in part})
    with open(os.path.join(path, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)


def repack_zip64(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            with zout.open(info.filename, "w", force_zip64=True) as w:
                w.write(zin.read(info.filename))


def gen_tiny_llama():
    base = os.path.join(OUT, "tiny_llama")
    sd = tiny_llama_weights()
    cfg = tiny_llama_config()
    for tag, dtype in (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)):
        c = dict(cfg, torch_dtype={"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[tag])
        st = {n: t.to(dtype).contiguous() for n, t in sd.items()}
        write_folder(os.path.join(base, f"st_{tag}"), c, {"model.safetensors": lambda p, st=st: save_file(st, p)})
        state = as_bin_state(sd, dtype)
        write_folder(os.path.join(base, f"bin_{tag}"), c, {"pytorch_model.bin": lambda p, s=state: torch.save(s, p)})
    state = as_bin_state(sd, torch.float32)
    sharded = os.path.join(base, "bin_sharded")
    write_folder(sharded, cfg, {})
    save_sharded(state, sharded, 3)
    write_folder(os.path.join(base, "bin_legacy"), cfg, {"pytorch_model.bin": lambda p: torch.save(
        state, p, _use_new_zipfile_serialization=False)})
    state16 = as_bin_state(sd, torch.float16)
    write_folder(os.path.join(base, "bin_legacy_f16"), dict(cfg, torch_dtype="float16"), {
        "pytorch_model.bin": lambda p: torch.save(state16, p, _use_new_zipfile_serialization=False)})
    z64 = os.path.join(base, "bin_zip64")
    write_folder(z64, cfg, {})
    repack_zip64(os.path.join(base, "bin_f32", "pytorch_model.bin"), os.path.join(z64, "pytorch_model.bin"))
    # Sanity: torch reads back what we wrote.
    for d in ("bin_f32", "bin_legacy", "bin_zip64"):
        back = torch.load(os.path.join(base, d, "pytorch_model.bin"), weights_only=True)
        assert torch.equal(back["lm_head.weight"], sd["lm_head.weight"]), d


def gen_family(name, out_name, legacy):
    src = os.path.join(FAMILIES, name)
    dst = os.path.join(OUT, out_name)
    os.makedirs(dst, exist_ok=True)
    for f in ("config.json", "generation_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), dst)
    sd = collections.OrderedDict(load_file(os.path.join(src, "model.safetensors")))
    torch.save(sd, os.path.join(dst, "pytorch_model.bin"), _use_new_zipfile_serialization=not legacy)


# ---- hostile inputs -------------------------------------------------------------------------

def wrap_zip(pkl, storages=None, prefix="archive", data_method=zipfile.ZIP_STORED, extra_names=()):
    """A torch-style zip around a raw pickle."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, data in (storages or {}).items():
            z.writestr(zipfile.ZipInfo(f"{prefix}/data/{key}"), data, compress_type=data_method)
        for n in extra_names:
            z.writestr(zipfile.ZipInfo(n), b"x")
        z.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


class Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def sbu(s):  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def tensor_pickle(storage_numel, offset, size, stride, storage="FloatStorage", key="0"):
    """A one-tensor state dict built opcode by opcode: {'w': _rebuild_tensor_v2(...)}."""
    def ints(vals):
        out = b"("
        for v in vals:
            out += b"\x8a\x08" + struct.pack("<q", v)  # LONG1 8 bytes
        return out + b"t"
    return (b"\x80\x02}(" + sbu("w") + b"ctorch._utils\n_rebuild_tensor_v2\n("
            + b"(" + sbu("storage") + b"ctorch\n" + storage.encode() + b"\n" + sbu(key) + sbu("cpu")
            + b"\x8a\x08" + struct.pack("<q", storage_numel) + b"tQ"
            + b"\x8a\x08" + struct.pack("<q", offset) + ints(size) + ints(stride)
            + b"\x89ccollections\nOrderedDict\n)RtRu.")


def gen_hostile():
    d = os.path.join(OUT, "hostile")
    os.makedirs(d, exist_ok=True)
    import builtins
    import subprocess
    cases = {
        "os_system": pickle.dumps({"w": Reduce(os.system, (f"touch {MARKER}",))}, protocol=2),
        # protocol 2 would write builtins as __builtin__ and subprocess as commands: spell them out
        "builtins_exec": b"\x80\x02cbuiltins\nexec\n" + sbu(f"open('{MARKER}','w')") + b"\x85R.",
        "builtins_eval": pickle.dumps(Reduce(builtins.eval, (f"open('{MARKER}','w')",)), protocol=4),
        "subprocess_popen": b"\x80\x02csubprocess\nPopen\n]" + sbu("touch") + b"a" + sbu(MARKER) + b"a\x85R.",
        "subprocess_popen_p4": pickle.dumps(Reduce(subprocess.Popen, (["touch", MARKER],)), protocol=4),
        "unknown_global": b"\x80\x02cmymodule\nEvil\n)R.",
        "stack_global_system": b"\x80\x04" + sbu("posix") + sbu("system") + b"\x93" + sbu(f"touch {MARKER}") + b"\x85R.",
        "reduce_non_callable": b"\x80\x02ctorch\nFloatStorage\n)R.",
        "inst_opcode": b"(ios\nsystem\n.",
        "obj_opcode": b"\x80\x02(ccollections\nOrderedDict\no.",
        "ext_opcode": b"\x80\x02\x82\x01.",
        "deep_nesting": b"\x80\x02" + b"(" * 100000 + b".",
        "deep_lists": b"\x80\x02" + b"]" * 200 + b"a" * 199 + b".",
        "binget_undefined": b"\x80\x02h\x07.",
        "huge_long_binput": b"\x80\x02}r\xff\xff\xff\xff.",
        "truncated": tensor_pickle(4, 0, [2, 2], [2, 1])[:-20],
        "garbage": bytes(range(256)) * 4,
        "offset_past_entry": tensor_pickle(4, 3, [2, 2], [2, 1]),
        "size_overflow": tensor_pickle(4, 0, [1 << 40, 1 << 40], [1, 1]),
        "stride_overflow": tensor_pickle(4, 0, [5, 2], [1 << 62, 1]),
        "storage_size_mismatch": tensor_pickle(8, 0, [2, 2], [2, 1]),
        "non_dict_root": b"\x80\x02\x8c\x01a\x85.",
    }
    data4 = struct.pack("<4f", 1, 2, 3, 4)
    for name, pkl in cases.items():
        storages = {"0": data4} if name in (
            "truncated", "offset_past_entry", "size_overflow", "stride_overflow", "storage_size_mismatch") else {}
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(wrap_zip(pkl, storages))
    good = tensor_pickle(4, 0, [2, 2], [2, 1])
    with open(os.path.join(d, "good.bin"), "wb") as f:
        f.write(wrap_zip(good, {"0": data4}))
    with open(os.path.join(d, "dotdot_name.bin"), "wb") as f:
        f.write(wrap_zip(good, {"0": data4}, extra_names=("archive/../../etc/evil",)))
    with open(os.path.join(d, "absolute_name.bin"), "wb") as f:
        f.write(wrap_zip(good, {"0": data4}, extra_names=("/tmp/evil",)))
    # a compressed (DEFLATE) data entry of the right size: 64 floats
    big = tensor_pickle(64, 0, [8, 8], [8, 1])
    with open(os.path.join(d, "compressed_data.bin"), "wb") as f:
        f.write(wrap_zip(big, {"0": data4 * 16}, data_method=zipfile.ZIP_DEFLATED))
    # a legacy-format file whose main pickle calls os.system
    legacy = (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
              + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
              + cases["os_system"] + pickle.dumps([], protocol=2))
    with open(os.path.join(d, "legacy_os_system.bin"), "wb") as f:
        f.write(legacy)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    gen_tiny_llama()
    gen_family("bloom", "bloom", legacy=False)
    gen_family("gpt2", "gpt2_legacy", legacy=True)
    gen_hostile()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    with open(os.path.join(OUT, ".gitignore"), "w") as f:
        f.write("# The reference safetensors of tiny_llama must be committed despite the repo-wide ignore.\n!*.safetensors\n")
    print(f"wrote {OUT}: {total} bytes")
    assert total < 1_500_000, total


if __name__ == "__main__":
    sys.exit(main())
