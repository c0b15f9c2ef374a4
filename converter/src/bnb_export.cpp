// .qmodel -> bitsandbytes checkpoint folder (bnb_export.h has the mapping).
#include "qmodel/converter/bnb_export.h"
#include "qmodel/converter/planner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "qmodel/converter/safetensors.h"
#include "qmodel/format/half.h"
#include "qmodel/format/reader.h"

namespace qmodel::converter {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using format::BlobRole;
using format::TensorInfo;
using format::TensorRole;

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_weight(const std::string& name) { return name.substr(0, name.size() - std::strlen(".weight")); }

const char* torch_dtype_name(SourceDType d) {
  switch (d) {
    case SourceDType::kF32: return "float32";
    case SourceDType::kF16: return "float16";
    case SourceDType::kBF16: return "bfloat16";
  }
  return "float32";
}

const char* torch_dtype_name(ComputeDType d) {
  switch (d) {
    case ComputeDType::kF32: return "float32";
    case ComputeDType::kF16: return "float16";
    case ComputeDType::kBF16: return "bfloat16";
  }
  return "float32";
}

StDType st_of(SourceDType d) { return static_cast<StDType>(d); }  // F32, F16, BF16 share values


// One safetensors entry: bytes borrowed from the .qmodel mapping or owned here.
struct OutTensor {
  std::string name;
  StDType dtype = StDType::kF32;
  std::vector<uint64_t> shape;
  ByteSpan bytes;
  std::vector<uint8_t> owned;
};

OutTensor borrowed(std::string name, StDType dtype, std::vector<uint64_t> shape, ByteSpan bytes) {
  OutTensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = bytes;
  return t;
}

OutTensor owned(std::string name, StDType dtype, std::vector<uint64_t> shape, std::vector<uint8_t> bytes) {
  OutTensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.owned = std::move(bytes);
  return t;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// bnb's QuantState.as_dict(packed=True) JSON: json.dumps of the non-tensor items, in this order.
std::string quant_state_json(const TensorInfo& t) {
  std::string s = "{\"quant_type\": \"";
  s += t.storage == StorageType::kNF4 ? "nf4" : "fp4";
  s += "\", \"blocksize\": " + std::to_string(t.quant.block_size);
  s += ", \"dtype\": \"" + std::string(torch_dtype_name(t.source_dtype)) + "\"";
  s += ", \"shape\": [";
  for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  s += "]";
  if (t.quant.double_quant) {
    s += ", \"nested_blocksize\": " + std::to_string(t.quant.nested_block_size);
    s += ", \"nested_dtype\": \"float32\"";
    s += ", \"nested_offset\": " + python_float_repr(static_cast<double>(t.quant.nested_offset));
  }
  return s + "}";
}

// A float blob as the source dtype (converted when it was stored in another float type), and
// transposed back to [in, out] for a GPT-2 Conv1D.
Result<OutTensor> float_tensor(const format::ModelFile& file, const TensorInfo& t) {
  const format::BlobRef* blob = t.find_blob(BlobRole::kData);
  if (!blob) return Status(StatusCode::kCorruptFile, "tensor '" + t.name + "' has no data blob");
  QMODEL_ASSIGN_OR_RETURN(ByteSpan bytes, file.blob_bytes(*blob));
  const uint64_t n = t.n_elems();
  const SourceDType stored = t.storage == StorageType::kF32   ? SourceDType::kF32
                             : t.storage == StorageType::kF16 ? SourceDType::kF16
                                                              : SourceDType::kBF16;
  const bool transpose = t.transposed && t.shape.size() == 2;
  std::vector<uint64_t> shape = t.shape;
  if (transpose) std::swap(shape[0], shape[1]);
  if (stored == t.source_dtype && !transpose) return borrowed(t.name, st_of(t.source_dtype), shape, bytes);
  const size_t out_elem = source_dtype_size(t.source_dtype);
  std::vector<uint8_t> out(n * out_elem);
  if (stored == t.source_dtype) {
    std::memcpy(out.data(), bytes.data(), out.size());
  } else {
    std::vector<float> f(n);
    convert_to_float(stored, bytes.data(), n, f.data());
    for (uint64_t i = 0; i < n; ++i) {
      if (t.source_dtype == SourceDType::kF32) {
        std::memcpy(&out[i * 4], &f[i], 4);
      } else {
        const uint16_t h = t.source_dtype == SourceDType::kBF16 ? float_to_bf16(f[i]) : float_to_f16(f[i]);
        std::memcpy(&out[i * 2], &h, 2);
      }
    }
  }
  if (transpose) {  // stored [out, in] = t.shape; the checkpoint holds [in, out]
    const uint64_t rows = t.shape[0], cols = t.shape[1];
    std::vector<uint8_t> tr(out.size());
    for (uint64_t r = 0; r < rows; ++r) {
      for (uint64_t c = 0; c < cols; ++c) std::memcpy(&tr[(c * rows + r) * out_elem], &out[(r * cols + c) * out_elem], out_elem);
    }
    out.swap(tr);
  }
  return owned(t.name, st_of(t.source_dtype), shape, std::move(out));
}

Status io_error(const std::string& path, const std::string& what) {
  return Status(StatusCode::kIoError, path + ": " + what + ": " + std::strerror(errno));
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, 1u << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error(path, "write failed");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status();
}

Status write_file(const std::string& path, const std::vector<std::pair<const uint8_t*, size_t>>& parts) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(path, "cannot create");
  Status s;
  for (const auto& [p, n] : parts) {
    s = write_all(fd, p, n, path);
    if (!s.ok()) break;
  }
  if (s.ok() && ::fsync(fd) != 0) s = io_error(path, "fsync failed");
  if (::close(fd) != 0 && s.ok()) s = io_error(path, "close failed");
  return s;
}

Status write_text(const std::string& path, const std::string& text) {
  return write_file(path, {{reinterpret_cast<const uint8_t*>(text.data()), text.size()}});
}

// model.safetensors as the safetensors library lays it out: entries sorted by dtype size
// (largest first), then name; header padded with spaces to a multiple of 8.
Result<uint64_t> write_safetensors(const std::string& path, std::vector<OutTensor>& tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const OutTensor& a, const OutTensor& b) {
    const size_t sa = st_dtype_size(a.dtype), sb = st_dtype_size(b.dtype);
    return sa != sb ? sa > sb : a.name < b.name;
  });
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (OutTensor& t : tensors) {
    if (!t.owned.empty() || t.bytes.empty()) t.bytes = ByteSpan(t.owned.data(), t.owned.size());
    header[t.name] = {{"dtype", st_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t prefix[8];
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(len >> (8 * i));
  std::vector<std::pair<const uint8_t*, size_t>> parts = {{prefix, 8}, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}};
  for (const OutTensor& t : tensors) parts.emplace_back(t.bytes.data(), t.bytes.size());
  QMODEL_RETURN_IF_ERROR(write_file(path, parts));
  return 8 + len + offset;
}

}  // namespace

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::string sign = std::signbit(v) ? "-" : "";
  v = std::fabs(v);
  if (v == 0.0) return sign + "0.0";
  // Shortest %.Ne that reads back to the same double: the digits Python's repr uses.
  char buf[64];
  for (int p = 0; p < 17; ++p) {
    std::snprintf(buf, sizeof(buf), "%.*e", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  const std::string sci(buf);
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  const int decpt = exp10 + 1;  // value = 0.DIGITS x 10^decpt
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += ebuf;
  } else if (decpt <= 0) {
    out = "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (static_cast<size_t>(decpt) >= digits.size()) {
    out = digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
  }
  return sign + out;
}

Result<BnbExportSummary> export_bnb(const BnbExportOptions& options) {
  if (options.output.empty()) return Status(StatusCode::kInvalidArgument, "no output folder given (-o)");
  std::error_code ec;
  const bool exists = fs::symlink_status(options.output, ec).type() != fs::file_type::not_found && !ec;
  if (exists && !options.overwrite) {
    return Status(StatusCode::kInvalidArgument, options.output + " exists (use -f to replace it)");
  }
  format::OpenOptions oo;
  oo.verify_checksums = true;
  std::unique_ptr<format::ModelFile> file;
  QMODEL_ASSIGN_OR_RETURN(file, format::ModelFile::open(options.input, oo));
  const format::ModelHeader& h = file->header();

  // What bitsandbytes can express: one quant type and one nesting per file (BitsAndBytesConfig).
  const TensorInfo* first = nullptr;
  for (const TensorInfo& t : h.tensors) {
    if (is_float_storage(t.storage)) continue;
    if (!has_suffix(t.name, ".weight")) {
      return Status(StatusCode::kInvalidArgument, "tensor '" + t.name + "' is quantized but bitsandbytes only quantizes module weights ('.weight')");
    }
    if (t.shape.size() != 2) {
      return Status(StatusCode::kInvalidArgument, "tensor '" + t.name + "' is quantized but not 2-D");
    }
    if (!first) {
      first = &t;
    } else if (t.storage != first->storage || t.quant.double_quant != first->quant.double_quant) {
      return Status(StatusCode::kInvalidArgument,
                    "tensors '" + first->name + "' and '" + t.name + "' are quantized differently (" +
                        storage_type_name(first->storage) + (first->quant.double_quant ? "+dq" : "") + " vs " +
                        storage_type_name(t.storage) + (t.quant.double_quant ? "+dq" : "") +
                        "); one bitsandbytes quantization_config cannot describe both");
    }
  }
  if (!first) {
    return Status(StatusCode::kInvalidArgument, options.input + " holds no quantized tensor: nothing for bitsandbytes to load");
  }
  const format::EmbeddedFile* config_file = h.find_file("config.json");
  if (!config_file) return Status(StatusCode::kInvalidArgument, options.input + " embeds no config.json");
  json config = json::parse(config_file->contents, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return Status(StatusCode::kCorruptFile, options.input + ": embedded config.json is not a JSON object");

  BnbExportSummary summary;
  std::vector<OutTensor> out;
  std::vector<std::string> float_linear_modules;
  bool lm_head_quantized = false;
  std::string lm_head_module = "lm_head";
  for (const TensorInfo& t : h.tensors) {
    if (t.role == TensorRole::kLmHead) {
      lm_head_quantized = !is_float_storage(t.storage);
      if (has_suffix(t.name, ".weight")) lm_head_module = strip_weight(t.name);
    }
    if (is_float_storage(t.storage)) {
      if (is_quantizable_role(t.role) && t.shape.size() == 2 && has_suffix(t.name, ".weight")) {
        float_linear_modules.push_back(strip_weight(t.name));
      }
      QMODEL_ASSIGN_OR_RETURN(OutTensor o, float_tensor(*file, t));
      out.push_back(std::move(o));
      continue;
    }
    ++summary.n_quantized;
    auto blob = [&](BlobRole role) -> Result<ByteSpan> {
      const format::BlobRef* b = t.find_blob(role);
      if (!b) return Status(StatusCode::kCorruptFile, "tensor '" + t.name + "' lacks a blob its storage needs");
      return file->blob_bytes(*b);
    };
    const uint64_t n = t.n_elems();
    if (t.storage == StorageType::kINT8) {
      const std::string module = strip_weight(t.name);
      QMODEL_ASSIGN_OR_RETURN(ByteSpan data, blob(BlobRole::kData));
      QMODEL_ASSIGN_OR_RETURN(ByteSpan scb, blob(BlobRole::kRowScale));
      out.push_back(borrowed(t.name, StDType::kI8, t.shape, data));
      out.push_back(borrowed(module + ".SCB", StDType::kF32, {t.shape[0]}, scb));
      out.push_back(owned(module + ".weight_format", StDType::kU8, {}, {0}));
      continue;
    }
    const uint64_t n_blocks = ceil_div(n, t.quant.block_size);
    QMODEL_ASSIGN_OR_RETURN(ByteSpan data, blob(BlobRole::kData));
    out.push_back(borrowed(t.name, StDType::kU8, {packed_4bit_bytes(n), 1}, data));
    out.push_back(owned(t.name + ".quant_map", StDType::kF32, {16}, f32_bytes(t.quant.code_table)));
    if (t.quant.double_quant) {
      QMODEL_ASSIGN_OR_RETURN(ByteSpan codes, blob(BlobRole::kAbsmaxCodes));
      QMODEL_ASSIGN_OR_RETURN(ByteSpan nested, blob(BlobRole::kNestedAbsmax));
      out.push_back(borrowed(t.name + ".absmax", StDType::kU8, {n_blocks}, codes));
      out.push_back(borrowed(t.name + ".nested_absmax", StDType::kF32, {ceil_div(n_blocks, t.quant.nested_block_size)}, nested));
      out.push_back(owned(t.name + ".nested_quant_map", StDType::kF32, {t.quant.nested_code_table.size()},
                          f32_bytes(t.quant.nested_code_table)));
    } else {
      QMODEL_ASSIGN_OR_RETURN(ByteSpan absmax, blob(BlobRole::kAbsmax));
      out.push_back(borrowed(t.name + ".absmax", StDType::kF32, {n_blocks}, absmax));
    }
    const std::string js = quant_state_json(t);
    const std::string key = t.name + ".quant_state.bitsandbytes__" + (t.storage == StorageType::kNF4 ? "nf4" : "fp4");
    out.push_back(owned(key, StDType::kU8, {js.size()}, std::vector<uint8_t>(js.begin(), js.end())));
  }

  // BitsAndBytesConfig(...).to_dict(): every key, as transformers writes it (sorted).
  const bool four_bit = is_4bit(first->storage);
  json q = json::object();
  q["_load_in_4bit"] = four_bit;
  q["_load_in_8bit"] = !four_bit;
  q["bnb_4bit_compute_dtype"] = four_bit ? torch_dtype_name(h.quant_settings.compute_dtype) : "float32";
  q["bnb_4bit_quant_storage"] = "uint8";
  q["bnb_4bit_quant_type"] = first->storage == StorageType::kNF4 ? "nf4" : "fp4";
  q["bnb_4bit_use_double_quant"] = four_bit && first->quant.double_quant;
  q["llm_int8_enable_fp32_cpu_offload"] = false;
  q["llm_int8_has_fp16_weight"] = false;
  // null lets transformers skip its default (the output embedding); an explicit list replaces
  // that default, so it names the kept lm_head too.
  if (float_linear_modules.empty() && !lm_head_quantized) {
    q["llm_int8_skip_modules"] = nullptr;
  } else {
    if (!lm_head_quantized) float_linear_modules.push_back(lm_head_module);
    q["llm_int8_skip_modules"] = float_linear_modules;
  }
  q["llm_int8_threshold"] = 6.0;
  q["load_in_4bit"] = four_bit;
  q["load_in_8bit"] = !four_bit;
  q["quant_method"] = "bitsandbytes";
  config["quantization_config"] = q;

  // Everything into a temporary sibling folder, renamed into place at the end.
  const fs::path target = fs::absolute(fs::path(options.output)).lexically_normal();
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp_template = (parent / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  if (::mkdtemp(tmp_template.data()) == nullptr) return io_error(tmp_template, "cannot create a temporary folder");
  const std::string tmp = tmp_template;
  auto fail = [&](Status s) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return s;
  };
  Result<uint64_t> bytes = write_safetensors(tmp + "/model.safetensors", out);
  if (!bytes.ok()) return fail(bytes.status());
  summary.bytes = bytes.value();
  summary.n_tensors = out.size();
  Status s = write_text(tmp + "/config.json", config.dump(2) + "\n");
  if (!s.ok()) return fail(s);
  for (const format::EmbeddedFile& f : h.files) {
    if (f.name == "config.json") continue;
    if (f.name.empty() || f.name.find('/') != std::string::npos || f.name[0] == '.') {
      return fail(Status(StatusCode::kCorruptFile, options.input + ": embedded file name '" + f.name + "' is not a plain file name"));
    }
    s = write_text(tmp + "/" + f.name, f.contents);
    if (!s.ok()) return fail(s);
  }
  if (::chmod(tmp.c_str(), 0755) != 0) return fail(io_error(tmp, "chmod failed"));
  std::string old;
  if (exists) {  // move the old folder aside first, so the rename below is atomic
    old = tmp + ".old";
    if (::rename(target.c_str(), old.c_str()) != 0) return fail(io_error(target.string(), "cannot move the existing output aside"));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    Status err = io_error(target.string(), "cannot rename the finished folder into place");
    if (!old.empty()) (void)::rename(old.c_str(), target.c_str());
    return fail(err);
  }
  if (!old.empty()) fs::remove_all(old, ec);
  const int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return summary;
}

}  // namespace qmodel::converter
