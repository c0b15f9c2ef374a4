// The conversion driver: checkpoint -> plan -> per-tensor encode -> streaming writer.
#include "qmodel/converter/convert.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <chrono>
#include <cstring>
#include <future>
#include <sstream>
#include <thread>

#include "encode_tensor.h"
#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/bnb_import.h"
#include "qmodel/converter/checkpoint.h"
#include "qmodel/converter/hf_config.h"
#include "qmodel/converter/planner.h"
#include "qmodel/converter/tokenizer_files.h"
#include "qmodel/format/writer.h"
#include "side_files.h"
#include "text_file.h"

#ifndef QMODEL_VERSION_STRING
#define QMODEL_VERSION_STRING "dev"
#endif

namespace qmodel::converter {
namespace {

Status validate_options(const ConvertOptions& o) {
  if (o.input.empty()) return Status(StatusCode::kInvalidArgument, "no input folder given");
  if (o.output.empty()) return Status(StatusCode::kInvalidArgument, "no output file given (-o)");
  if (is_4bit(o.quant) && !is_valid_4bit_block_size(o.block_size)) {
    return Status(StatusCode::kInvalidArgument, "--blocksize " + std::to_string(o.block_size) +
                                                    ": must be a power of two from 32 to 4096");
  }
  if (o.double_quant && !is_4bit(o.quant)) {
    return Status(StatusCode::kInvalidArgument, "--double-quant applies to nf4 and fp4 only");
  }
  return Status();
}

ByteSpan as_span(const std::string& s) { return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

std::string canonical_options(const ConvertOptions& o) {
  std::ostringstream s;
  s << "quant=" << storage_type_name(o.quant);
  if (is_4bit(o.quant)) s << " blocksize=" << o.block_size << " double_quant=" << (o.double_quant ? 1 : 0);
  s << " compute_dtype=" << compute_dtype_name(o.compute_dtype) << " quantize_lm_head=" << (o.quantize_lm_head ? 1 : 0)
    << " compress=" << (o.compression == format::Compression::kZstd ? "zstd" : "none");
  for (const std::string& p : o.skip_patterns) s << " skip=" << p;
  return s.str();
}

// The roles a tensor's blobs will have, in order (types.h documents them per storage type).
std::vector<format::BlobRole> blob_roles(StorageType storage, bool double_quant) {
  using R = format::BlobRole;
  if (is_4bit(storage)) {
    return double_quant ? std::vector<R>{R::kData, R::kAbsmaxCodes, R::kNestedAbsmax} : std::vector<R>{R::kData, R::kAbsmax};
  }
  if (storage == StorageType::kINT8) return {R::kData, R::kRowScale};
  return {R::kData};
}

// A [rows, cols] source tensor rewritten as its [cols, rows] transpose, in the source dtype.
class TransposedCopy {
 public:
  const TensorEntry& of(const TensorEntry& source) {
    const size_t elem = source_dtype_size(source.dtype);
    const uint64_t rows = source.shape[0], cols = source.shape[1];
    bytes_.resize(source.bytes.size());
    const uint8_t* in = source.bytes.data();
    for (uint64_t r = 0; r < rows; ++r) {
      for (uint64_t c = 0; c < cols; ++c) std::memcpy(&bytes_[(c * rows + r) * elem], in + (r * cols + c) * elem, elem);
    }
    entry_ = source;
    entry_.shape = {cols, rows};
    entry_.bytes = ByteSpan(bytes_.data(), bytes_.size());
    return entry_;
  }

 private:
  std::vector<uint8_t> bytes_;
  TensorEntry entry_;
};

// The header as it will be, with placeholder numbers: the writer reserves its size up front.
format::ModelHeader skeleton_header(const Plan& plan, const ConvertOptions& o) {
  format::ModelHeader h;
  for (const TensorPlan& p : plan.tensors) {
    format::TensorInfo t;
    t.name = p.source->name;
    t.shape = p.source->shape;
    if (p.transpose) std::swap(t.shape[0], t.shape[1]);
    t.role = p.role;
    t.layer = p.layer;
    t.transposed = p.transpose;
    t.source_dtype = p.source->dtype;
    t.storage = p.storage;
    if (is_4bit(p.storage)) {
      t.quant.block_size = o.block_size;
      t.quant.code_table.assign(16, 0.0f);
      if (o.double_quant) {
        t.quant.double_quant = true;
        t.quant.nested_block_size = kNestedBlockSize;
        t.quant.nested_code_table.assign(kDynamicMapSize, 0.0f);
      }
    }
    for (format::BlobRole role : blob_roles(p.storage, o.double_quant && is_4bit(p.storage))) {
      format::BlobRef b;
      b.role = role;
      t.blobs.push_back(b);
    }
    h.tensors.push_back(std::move(t));
  }
  return h;
}

}  // namespace

Result<ConvertSummary> convert(const ConvertOptions& options, const ProgressCallback& progress) {
  // A bitsandbytes folder is imported as it is quantized, never requantized (bnb_import.h).
  if (is_bnb_folder(options.input)) return import_bnb(options, BnbImportRequest{}, progress);
  const auto t_start = std::chrono::steady_clock::now();
  QMODEL_RETURN_IF_ERROR(validate_options(options));
  ConvertSummary summary;

  std::unique_ptr<Checkpoint> checkpoint;
  QMODEL_ASSIGN_OR_RETURN(checkpoint, Checkpoint::open(options.input));
  const std::string dir = checkpoint->dir();

  format::ModelHeader header;
  QMODEL_RETURN_IF_ERROR(read_side_files(dir, header, summary.warnings).status());

  Plan plan;
  QMODEL_ASSIGN_OR_RETURN(plan, plan_tensors(checkpoint->tensors(), header.config, header.arch, options));
  for (std::string& w : plan.warnings) summary.warnings.push_back(std::move(w));
  for (std::string& w : checkpoint->warnings()) summary.warnings.push_back(std::move(w));

  // Every file the conversion read: checkpoint files, the shard index, the embedded side files,
  // hashed from memory (the mappings and the texts already read) beside the conversion.
  std::vector<std::pair<std::string, ByteSpan>> sources;
  for (const std::string& name : checkpoint->files()) sources.emplace_back(name, checkpoint->file_bytes(name));
  Result<std::string> index_text = Status(StatusCode::kNotFound, "no index");
  if (!checkpoint->index_file().empty()) {
    index_text = read_text_file_capped(dir + "/" + checkpoint->index_file(), kMaxSideFileBytes);
    if (index_text.ok()) sources.emplace_back(checkpoint->index_file(), as_span(index_text.value()));
  }
  for (const format::EmbeddedFile& f : header.files) sources.emplace_back(f.name, as_span(f.contents));
  std::future<std::vector<format::SourceFile>> hashes = std::async(std::launch::async, [&sources] {
    std::vector<format::SourceFile> files;
    for (const auto& [name, bytes] : sources) files.push_back({name, bytes.size(), XXH3_64bits(bytes.data(), bytes.size())});
    return files;
  });

  format::ModelHeader skeleton = skeleton_header(plan, options);
  skeleton.config = header.config;
  skeleton.arch = header.arch;
  skeleton.generation = header.generation;
  skeleton.files = header.files;
  header.quant_settings.quant = options.quant;
  header.quant_settings.block_size = is_4bit(options.quant) ? options.block_size : 0;
  header.quant_settings.double_quant = options.double_quant;
  header.quant_settings.compute_dtype = options.compute_dtype;
  header.quant_settings.skip_patterns = options.skip_patterns;
  header.quant_settings.quantize_lm_head = options.quantize_lm_head;
  header.quant_settings.compression = options.compression;
  header.provenance.converter = std::string("qconvert ") + QMODEL_VERSION_STRING;
  header.provenance.options = canonical_options(options);
  for (const auto& source : sources) header.provenance.source_files.push_back({source.first, 0, 0});
  skeleton.quant_settings = header.quant_settings;
  skeleton.provenance = header.provenance;

  const format::WriterOptions wopts = writer_options(options);
  std::unique_ptr<format::ModelWriter> writer;
  QMODEL_ASSIGN_OR_RETURN(writer, format::ModelWriter::create(options.output, wopts, skeleton));

  const unsigned n_threads = options.n_threads ? options.n_threads : std::max(1u, std::thread::hardware_concurrency());
  ThreadPool pool(n_threads);
  TensorEncoder encoder(options, pool);
  ConvertProgress prog;
  prog.tensors_total = plan.tensors.size();
  for (const TensorPlan& p : plan.tensors) prog.input_bytes_total += p.source->bytes.size();

  header.tensors = std::move(skeleton.tensors);
  // Two-stage pipeline: tensor i is written (and its source pages released) on a writer thread
  // while tensor i+1 is encoded; the encoder's two buffer sets keep them apart, and waiting for
  // write i before starting write i+1 keeps the file order (and bytes) fixed.
  std::future<Status> pending_write;
  auto write_tensor = [&](size_t i, EncodedTensor encoded) -> Status {
    const TensorPlan& p = plan.tensors[i];
    format::TensorInfo& info = header.tensors[i];
    for (size_t b = 0; b < encoded.parts.size(); ++b) {
      Result<format::BlobRef> ref = writer->append_blob(encoded.parts[b].role, encoded.parts[b].bytes);
      if (!ref.ok()) return ref.status().with_context(options.output + ": tensor '" + info.name + "'");
      info.blobs[b] = ref.value();
      summary.data_bytes += ref->stored_size;
    }
    checkpoint->release(*p.source);
    return Status();
  };
  // Transposed copies (GPT-2 Conv1D) alternate between two slots for the same reason: the float
  // encoding of tensor i may point into its copy while tensor i+1 is prepared.
  TransposedCopy transposed[2];
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const TensorPlan& p = plan.tensors[i];
    format::TensorInfo& info = header.tensors[i];
    prog.current_tensor = &info.name;
    if (progress) progress(prog);
    QMODEL_RETURN_IF_ERROR(check_cancelled(options));  // pending_write's destructor waits for the write
    const TensorEntry* source = p.source;
    if (p.transpose) source = &transposed[i % 2].of(*p.source);
    Result<EncodedTensor> encoded = encoder.encode(*source, p.storage);
    if (pending_write.valid()) QMODEL_RETURN_IF_ERROR(pending_write.get());
    if (!encoded.ok()) return encoded.status();
    info.quant = encoded->quant;
    QMODEL_ASSERT(encoded->parts.size() == info.blobs.size());
    for (size_t b = 0; b < encoded->parts.size(); ++b) QMODEL_ASSERT(encoded->parts[b].role == info.blobs[b].role);
    pending_write = std::async(std::launch::async, write_tensor, i, std::move(encoded).value());
    summary.n_params += p.source->n_elems();
    summary.input_bytes += p.source->bytes.size();
    if (!is_float_storage(p.storage)) ++summary.n_quantized;
    prog.input_bytes_done += p.source->bytes.size();
    ++prog.tensors_done;
  }
  if (pending_write.valid()) QMODEL_RETURN_IF_ERROR(pending_write.get());
  prog.current_tensor = nullptr;
  if (progress) progress(prog);

  header.provenance.source_files = hashes.get();
  QMODEL_RETURN_IF_ERROR(writer->finish(header));

  struct stat st {};
  if (::stat(options.output.c_str(), &st) == 0) summary.output_bytes = static_cast<uint64_t>(st.st_size);
  summary.n_tensors = plan.tensors.size();
  summary.bits_per_param = summary.n_params ? 8.0 * static_cast<double>(summary.data_bytes) / static_cast<double>(summary.n_params) : 0.0;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return summary;
}

format::WriterOptions writer_options(const ConvertOptions& options) {
  format::WriterOptions w;
  w.alignment = options.alignment;
  w.compression = options.compression;
  w.overwrite = options.overwrite;
  w.signing_key = options.signing_key;
  return w;
}

Status check_cancelled(const ConvertOptions& options) {
  if (options.cancel == nullptr || !options.cancel->load(std::memory_order_relaxed)) return Status();
  return Status(StatusCode::kCancelled, options.output + ": conversion interrupted; nothing was written");
}

}  // namespace qmodel::converter
