// Restricted unpickler for torch state dicts. It interprets the protocol 2-5 opcodes torch.save
// emits and builds inert values; the only "calls" are the few state-dict constructors below,
// which it evaluates itself (building descriptions of tensors, never running code).
#include "torch_pickle.h"

#include <cstring>
#include <limits>
#include <new>
#include <set>

namespace qmodel::converter {
namespace pickle {

namespace {

int64_t abs_offset(uint64_t base, uint64_t pos) {
  uint64_t v = 0;
  if (__builtin_add_overflow(base, pos, &v) || v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return -1;
  return static_cast<int64_t>(v);
}

struct StorageName {
  const char* name;
  TorchDType dtype;
};
constexpr StorageName kStorageTypes[] = {
    {"FloatStorage", TorchDType::kF32},         {"HalfStorage", TorchDType::kF16},
    {"BFloat16Storage", TorchDType::kBF16},     {"DoubleStorage", TorchDType::kF64},
    {"LongStorage", TorchDType::kI64},          {"IntStorage", TorchDType::kI32},
    {"ShortStorage", TorchDType::kI16},         {"CharStorage", TorchDType::kI8},
    {"ByteStorage", TorchDType::kU8},           {"BoolStorage", TorchDType::kBool},
    {"ComplexFloatStorage", TorchDType::kC64},  {"ComplexDoubleStorage", TorchDType::kC128},
};

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '.': return "STOP";
    case '(': return "MARK";
    case '}': return "EMPTY_DICT";
    case ']': return "EMPTY_LIST";
    case ')': return "EMPTY_TUPLE";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 'C': return "SHORT_BINBYTES";
    case 'B': return "BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'G': return "BINFLOAT";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'N': return "NONE";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 'a': return "APPEND";
    case 'e': return "APPENDS";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE";
    case 'b': return "BUILD";
    case 'Q': return "BINPERSID";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'P': return "PERSID";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'g': return "GET";
    case 'p': return "PUT";
    case 'd': return "DICT";
    case 'l': return "LIST";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

std::string hex_byte(uint8_t b) {
  static const char* kDigits = "0123456789abcdef";
  return std::string("0x") + kDigits[b >> 4] + kDigits[b & 15];
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s.size() > 80 ? out + "..." : out;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kBigInt: return "big int";
    case Kind::kFloat: return "float";
    case Kind::kStr: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "global";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

Status Machine::fail(uint64_t pos, const std::string& what) const {
  return corrupt_file(file_, "", abs_offset(base_, pos), "pickle: " + what);
}

Result<uint32_t> Machine::make(Obj obj, uint64_t pos) {
  if (objs_.size() >= kMaxPickleObjects) {
    return fail(pos, "more than " + std::to_string(kMaxPickleObjects) + " objects; refused");
  }
  objs_.push_back(std::move(obj));
  return static_cast<uint32_t>(objs_.size() - 1);
}

Status Machine::push(uint32_t index, uint64_t pos) {
  if (stack_.size() >= kMaxPickleStack) return fail(pos, "stack deeper than " + std::to_string(kMaxPickleStack));
  stack_.push_back(index);
  return Status::ok_status();
}

Result<uint32_t> Machine::pop(uint64_t pos, const char* op) {
  const size_t floor = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= floor) return fail(pos, std::string(op) + " on an empty stack");
  const uint32_t v = stack_.back();
  stack_.pop_back();
  return v;
}

Result<std::vector<uint32_t>> Machine::pop_mark(uint64_t pos, const char* op) {
  if (marks_.empty()) return fail(pos, std::string(op) + " without a MARK");
  const size_t m = marks_.back();
  marks_.pop_back();
  std::vector<uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
  stack_.resize(m);
  return items;
}

Status Machine::add_child(uint32_t parent, uint32_t child, uint64_t pos) {
  const uint32_t d = objs_[child].depth + 1;
  if (d > kMaxPickleDepth) return fail(pos, "containers nested deeper than " + std::to_string(kMaxPickleDepth));
  if (d > objs_[parent].depth) objs_[parent].depth = d;
  objs_[parent].items.push_back(child);
  return Status::ok_status();
}

Result<uint32_t> Machine::resolve_global(const std::string& module, const std::string& name, uint64_t pos, const char* op) {
  Obj g;
  g.kind = Kind::kGlobal;
  bool ok = false;
  if (mode_ != Mode::kPlain) {
    if (module == "collections" && name == "OrderedDict") {
      g.global = Global::kOrderedDict, ok = true;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      g.global = Global::kRebuildTensorV2, ok = true;
    } else if (module == "torch._utils" && name == "_rebuild_tensor") {
      g.global = Global::kRebuildTensor, ok = true;
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
      g.global = Global::kRebuildParameter, ok = true;
    } else if (module == "torch._utils" && name == "_rebuild_parameter_with_state") {
      g.global = Global::kRebuildParameterWithState, ok = true;
    } else if (module == "torch") {
      for (const StorageName& s : kStorageTypes) {
        if (name == s.name) g.global = Global::kStorageType, g.dtype = s.dtype, ok = true;
      }
    }
  }
  if (!ok) {
    return fail(pos, std::string(op) + ": global '" + printable(module) + "." + printable(name) +
                         "' is not allowed (a state dict only needs collections.OrderedDict, torch._utils._rebuild_* "
                         "and torch.*Storage); refused, nothing was executed");
  }
  return make(std::move(g), pos);
}

Result<std::vector<uint64_t>> Machine::int_tuple(uint32_t index, const char* what, uint64_t pos) {
  const Obj& t = objs_[index];
  if (t.kind != Kind::kTuple && t.kind != Kind::kList) {
    return fail(pos, std::string(what) + " must be a tuple of ints, got " + kind_name(t.kind));
  }
  if (t.items.size() > kMaxTensorRank) {
    return fail(pos, std::string(what) + " has " + std::to_string(t.items.size()) + " dimensions (limit " +
                         std::to_string(kMaxTensorRank) + ")");
  }
  std::vector<uint64_t> out;
  for (uint32_t i : t.items) {
    const Obj& v = objs_[i];
    if (v.kind != Kind::kInt || v.i < 0) return fail(pos, std::string(what) + " must hold non-negative ints");
    out.push_back(static_cast<uint64_t>(v.i));
  }
  return out;
}

Result<uint32_t> Machine::persistent_load(uint32_t pid_index, uint64_t pos) {
  if (mode_ == Mode::kPlain) return fail(pos, "BINPERSID is not allowed here");
  const Obj& pid = objs_[pid_index];
  const size_t want = mode_ == Mode::kStateZip ? 5 : 6;
  if (pid.kind != Kind::kTuple || pid.items.size() != want) {
    return fail(pos, "persistent id must be a " + std::to_string(want) + "-tuple ('storage', type, key, location, numel" +
                         (want == 6 ? ", view)" : ")") + ", got " + kind_name(pid.kind) +
                         (pid.kind == Kind::kTuple ? " of " + std::to_string(pid.items.size()) : ""));
  }
  const Obj& tag = objs_[pid.items[0]];
  const Obj& type = objs_[pid.items[1]];
  const Obj& key = objs_[pid.items[2]];
  const Obj& location = objs_[pid.items[3]];
  const Obj& numel = objs_[pid.items[4]];
  if (tag.kind != Kind::kStr || tag.s != "storage") return fail(pos, "persistent id is not a ('storage', ...) tuple");
  if (type.kind != Kind::kGlobal || type.global != Global::kStorageType) {
    return fail(pos, "persistent id's storage type is not a torch.*Storage");
  }
  if (key.kind != Kind::kStr || key.s.empty() || key.s.size() > 64) return fail(pos, "storage key must be a short string");
  for (char c : key.s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) {
      return fail(pos, "storage key '" + printable(key.s) + "' has characters other than [A-Za-z0-9_]");
    }
  }
  if (location.kind != Kind::kStr) return fail(pos, "storage location must be a string");
  if (numel.kind != Kind::kInt || numel.i < 0) return fail(pos, "storage numel must be a non-negative int");
  uint64_t n_bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel.i), torch_dtype_size(type.dtype), &n_bytes)) {
    return fail(pos, "storage byte size overflows 64 bits");
  }
  size_t index = state_.storages.size();
  for (size_t i = 0; i < state_.storages.size(); ++i) {
    if (state_.storages[i].key == key.s) index = i;
  }
  if (index == state_.storages.size()) {
    if (state_.storages.size() >= (1u << 20)) return fail(pos, "too many storages");
    PickledStorage s;
    s.key = key.s;
    s.dtype = type.dtype;
    s.numel = static_cast<uint64_t>(numel.i);
    s.location = location.s;
    state_.storages.push_back(std::move(s));
  } else if (state_.storages[index].dtype != type.dtype || state_.storages[index].numel != static_cast<uint64_t>(numel.i)) {
    return fail(pos, "storage '" + key.s + "' is referenced with two different types or sizes");
  }
  Obj st;
  st.kind = Kind::kStorage;
  st.i = static_cast<int64_t>(index);
  if (mode_ == Mode::kStateLegacy) {
    const Obj& view = objs_[pid.items[5]];
    if (view.kind == Kind::kTuple) {
      if (view.items.size() != 3 || objs_[view.items[0]].kind != Kind::kStr || objs_[view.items[1]].kind != Kind::kInt ||
          objs_[view.items[2]].kind != Kind::kInt || objs_[view.items[1]].i < 0 || objs_[view.items[2]].i < 0) {
        return fail(pos, "storage view must be (key, offset, numel)");
      }
      const uint64_t v_off = static_cast<uint64_t>(objs_[view.items[1]].i);
      const uint64_t v_n = static_cast<uint64_t>(objs_[view.items[2]].i);
      if (v_off > state_.storages[index].numel || v_n > state_.storages[index].numel - v_off) {
        return fail(pos, "storage view [" + std::to_string(v_off) + ", +" + std::to_string(v_n) + ") lies outside storage '" +
                             key.s + "' of " + std::to_string(state_.storages[index].numel) + " elements");
      }
      st.view_offset = v_off;
    } else if (view.kind != Kind::kNone) {
      return fail(pos, "storage view must be None or a tuple");
    }
  }
  return make(std::move(st), pos);
}

Result<uint32_t> Machine::rebuild_tensor(const std::vector<uint32_t>& args, bool v2, uint64_t pos) {
  const char* fn = v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor";
  if (v2 ? (args.size() != 6 && args.size() != 7) : args.size() != 4) {
    return fail(pos, std::string(fn) + " with " + std::to_string(args.size()) + " arguments");
  }
  const Obj& storage = objs_[args[0]];
  if (storage.kind != Kind::kStorage) return fail(pos, std::string(fn) + ": first argument is not a storage");
  const Obj& offset = objs_[args[1]];
  if (offset.kind != Kind::kInt || offset.i < 0) return fail(pos, std::string(fn) + ": storage offset must be a non-negative int");
  PickledTensor t;
  t.storage = static_cast<size_t>(storage.i);
  if (__builtin_add_overflow(static_cast<uint64_t>(offset.i), storage.view_offset, &t.storage_offset)) {
    return fail(pos, "storage offset overflows");
  }
  QMODEL_ASSIGN_OR_RETURN(t.shape, int_tuple(args[2], "size", pos));
  QMODEL_ASSIGN_OR_RETURN(t.stride, int_tuple(args[3], "stride", pos));
  if (t.shape.size() != t.stride.size()) {
    return fail(pos, "size has " + std::to_string(t.shape.size()) + " dimensions but stride " + std::to_string(t.stride.size()));
  }
  if (v2 && objs_[args[4]].kind != Kind::kBool) return fail(pos, "requires_grad must be a bool");
  t.pickle_offset = static_cast<uint64_t>(abs_offset(base_, pos));
  if (state_.tensors.size() >= (1u << 22)) return fail(pos, "too many tensors");
  state_.tensors.push_back(std::move(t));
  Obj out;
  out.kind = Kind::kTensor;
  out.i = static_cast<int64_t>(state_.tensors.size() - 1);
  return make(std::move(out), pos);
}

Result<uint32_t> Machine::reduce(uint32_t callable, uint32_t args_index, uint64_t pos) {
  const Obj& fn = objs_[callable];
  if (fn.kind != Kind::kGlobal || fn.global == Global::kStorageType) {
    return fail(pos, std::string("REDUCE on a ") + (fn.kind == Kind::kGlobal ? "storage type" : kind_name(fn.kind)) +
                         ", which is not an allowed callable; refused");
  }
  const Obj& a = objs_[args_index];
  if (a.kind != Kind::kTuple) return fail(pos, std::string("REDUCE arguments must be a tuple, got ") + kind_name(a.kind));
  const std::vector<uint32_t> args = a.items;
  switch (fn.global) {
    case Global::kOrderedDict: {
      if (!args.empty()) return fail(pos, "collections.OrderedDict called with arguments");
      Obj d;
      d.kind = Kind::kDict;
      return make(std::move(d), pos);
    }
    case Global::kRebuildTensorV2: return rebuild_tensor(args, true, pos);
    case Global::kRebuildTensor: return rebuild_tensor(args, false, pos);
    case Global::kRebuildParameter:
    case Global::kRebuildParameterWithState: {
      const size_t want = fn.global == Global::kRebuildParameter ? 3 : 4;
      if (args.size() != want || objs_[args[0]].kind != Kind::kTensor) {
        return fail(pos, "_rebuild_parameter needs (tensor, requires_grad, hooks" + std::string(want == 4 ? ", state)" : ")"));
      }
      return args[0];
    }
    case Global::kStorageType: break;
  }
  return fail(pos, "REDUCE on a callable that is not allowed");
}

Result<uint32_t> Machine::run(uint64_t* consumed) {
  try {
    const uint8_t* d = data_.data();
    const uint64_t n = data_.size();
    if (n > kMaxPickleBytes) return fail(0, "pickle of " + std::to_string(n) + " bytes exceeds the limit");
    uint64_t pos = 0;
    auto need = [&](uint64_t at, uint64_t k) { return at <= n && k <= n - at; };
    auto read_le = [&](uint64_t at, int bytes) {
      uint64_t v = 0;
      for (int b = bytes - 1; b >= 0; --b) v = (v << 8) | d[at + static_cast<uint64_t>(b)];
      return v;
    };
    while (true) {
      if (pos >= n) return fail(pos, "truncated: no STOP opcode");
      const uint64_t op_pos = pos;
      const uint8_t op = d[pos++];
      const char* name = opcode_name(op);
      if (!name) return fail(op_pos, "unknown opcode " + hex_byte(op) + "; refused");
      auto truncated = [&]() { return fail(op_pos, std::string(name) + ": truncated argument"); };
      auto push_new = [&](Obj o) -> Status {
        QMODEL_ASSIGN_OR_RETURN(uint32_t idx, make(std::move(o), op_pos));
        return push(idx, op_pos);
      };
      auto simple = [&](Kind kind, int64_t i) -> Status {
        Obj o;
        o.kind = kind;
        o.i = i;
        return push_new(std::move(o));
      };
      switch (op) {
        case 0x80: {  // PROTO
          if (!need(pos, 1)) return truncated();
          if (d[pos] < 2 || d[pos] > 5) return fail(op_pos, "pickle protocol " + std::to_string(d[pos]) + " (2 to 5 accepted)");
          pos += 1;
          break;
        }
        case 0x95:  // FRAME: only a length hint
          if (!need(pos, 8)) return truncated();
          if (read_le(pos, 8) > n - pos - 8) return fail(op_pos, "FRAME runs past the end of the pickle");
          pos += 8;
          break;
        case '.': {  // STOP
          QMODEL_ASSIGN_OR_RETURN(uint32_t result, pop(op_pos, name));
          if (!marks_.empty() || !stack_.empty()) return fail(op_pos, "STOP with items left on the stack");
          if (consumed) *consumed = pos;
          return result;
        }
        case '(':
          if (marks_.size() >= kMaxPickleDepth) return fail(op_pos, "MARKs nested deeper than " + std::to_string(kMaxPickleDepth));
          marks_.push_back(stack_.size());
          break;
        case '}': QMODEL_RETURN_IF_ERROR(simple(Kind::kDict, 0)); break;
        case ']': QMODEL_RETURN_IF_ERROR(simple(Kind::kList, 0)); break;
        case ')': QMODEL_RETURN_IF_ERROR(simple(Kind::kTuple, 0)); break;
        case 'N': QMODEL_RETURN_IF_ERROR(simple(Kind::kNone, 0)); break;
        case 0x88: QMODEL_RETURN_IF_ERROR(simple(Kind::kBool, 1)); break;
        case 0x89: QMODEL_RETURN_IF_ERROR(simple(Kind::kBool, 0)); break;
        case 't':
        case 0x85:
        case 0x86:
        case 0x87: {
          std::vector<uint32_t> items;
          if (op == 't') {
            QMODEL_ASSIGN_OR_RETURN(items, pop_mark(op_pos, name));
          } else {
            const int k = op - 0x84;
            items.resize(static_cast<size_t>(k));
            for (int j = k - 1; j >= 0; --j) {
              QMODEL_ASSIGN_OR_RETURN(items[static_cast<size_t>(j)], pop(op_pos, name));
            }
          }
          Obj t;
          t.kind = Kind::kTuple;
          QMODEL_ASSIGN_OR_RETURN(uint32_t idx, make(std::move(t), op_pos));
          for (uint32_t it : items) QMODEL_RETURN_IF_ERROR(add_child(idx, it, op_pos));
          QMODEL_RETURN_IF_ERROR(push(idx, op_pos));
          break;
        }
        case 'X':
        case 0x8c:
        case 0x8d:
        case 'C':
        case 'B':
        case 0x8e: {
          const int len_bytes = (op == 0x8c || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
          if (!need(pos, static_cast<uint64_t>(len_bytes))) return truncated();
          const uint64_t len = read_le(pos, len_bytes);
          pos += static_cast<uint64_t>(len_bytes);
          if (!need(pos, len)) return fail(op_pos, std::string(name) + ": length " + std::to_string(len) + " runs past the end");
          Obj s;
          s.kind = (op == 'C' || op == 'B' || op == 0x8e) ? Kind::kBytes : Kind::kStr;
          s.s.assign(reinterpret_cast<const char*>(d + pos), static_cast<size_t>(len));
          if (s.kind == Kind::kStr && !valid_utf8(s.s)) return fail(op_pos, std::string(name) + ": invalid UTF-8");
          pos += len;
          QMODEL_RETURN_IF_ERROR(push_new(std::move(s)));
          break;
        }
        case 'J':
          if (!need(pos, 4)) return truncated();
          QMODEL_RETURN_IF_ERROR(simple(Kind::kInt, static_cast<int32_t>(static_cast<uint32_t>(read_le(pos, 4)))));
          pos += 4;
          break;
        case 'K':
          if (!need(pos, 1)) return truncated();
          QMODEL_RETURN_IF_ERROR(simple(Kind::kInt, d[pos]));
          pos += 1;
          break;
        case 'M':
          if (!need(pos, 2)) return truncated();
          QMODEL_RETURN_IF_ERROR(simple(Kind::kInt, static_cast<int64_t>(read_le(pos, 2))));
          pos += 2;
          break;
        case 0x8a:
        case 0x8b: {  // LONG1 / LONG4: little-endian two's complement
          const int len_bytes = op == 0x8a ? 1 : 4;
          if (!need(pos, static_cast<uint64_t>(len_bytes))) return truncated();
          const uint64_t len = read_le(pos, len_bytes);
          pos += static_cast<uint64_t>(len_bytes);
          if (len > 64) return fail(op_pos, std::string(name) + ": integer of " + std::to_string(len) + " bytes; refused");
          if (!need(pos, len)) return truncated();
          Obj o;
          if (len <= 8) {
            uint64_t v = len ? read_le(pos, static_cast<int>(len)) : 0;
            if (len > 0 && len < 8 && (d[pos + len - 1] & 0x80)) v |= ~0ull << (8 * len);  // sign-extend
            o.kind = Kind::kInt;
            std::memcpy(&o.i, &v, 8);
          } else {
            o.kind = Kind::kBigInt;
            o.s.assign(reinterpret_cast<const char*>(d + pos), static_cast<size_t>(len));
          }
          pos += len;
          QMODEL_RETURN_IF_ERROR(push_new(std::move(o)));
          break;
        }
        case 'G': {
          if (!need(pos, 8)) return truncated();
          uint64_t bits = 0;
          for (int b = 0; b < 8; ++b) bits = (bits << 8) | d[pos + static_cast<uint64_t>(b)];  // big-endian
          Obj o;
          o.kind = Kind::kFloat;
          std::memcpy(&o.f, &bits, 8);
          pos += 8;
          QMODEL_RETURN_IF_ERROR(push_new(std::move(o)));
          break;
        }
        case 'q':
        case 'r':
        case 0x94: {
          uint64_t index = 0;
          if (op == 0x94) {
            index = memo_count_;  // len(memo)
          } else {
            const int len_bytes = op == 'q' ? 1 : 4;
            if (!need(pos, static_cast<uint64_t>(len_bytes))) return truncated();
            index = read_le(pos, len_bytes);
            pos += static_cast<uint64_t>(len_bytes);
          }
          if (index >= kMaxPickleMemo) {
            return fail(op_pos, std::string(name) + " index " + std::to_string(index) + " exceeds the memo limit of " +
                                    std::to_string(kMaxPickleMemo) + "; refused");
          }
          if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
            return fail(op_pos, std::string(name) + " on an empty stack");
          }
          if (index >= memo_.size()) memo_.resize(static_cast<size_t>(index) + 1, -1);
          if (memo_[static_cast<size_t>(index)] < 0) ++memo_count_;
          memo_[static_cast<size_t>(index)] = stack_.back();
          break;
        }
        case 'h':
        case 'j': {
          const int len_bytes = op == 'h' ? 1 : 4;
          if (!need(pos, static_cast<uint64_t>(len_bytes))) return truncated();
          const uint64_t index = read_le(pos, len_bytes);
          pos += static_cast<uint64_t>(len_bytes);
          if (index >= memo_.size() || memo_[static_cast<size_t>(index)] < 0) {
            return fail(op_pos, std::string(name) + " of memo index " + std::to_string(index) + ", which was never stored");
          }
          QMODEL_RETURN_IF_ERROR(push(static_cast<uint32_t>(memo_[static_cast<size_t>(index)]), op_pos));
          break;
        }
        case 's':
        case 'u': {
          std::vector<uint32_t> items;
          if (op == 's') {
            items.resize(2);
            QMODEL_ASSIGN_OR_RETURN(items[1], pop(op_pos, name));
            QMODEL_ASSIGN_OR_RETURN(items[0], pop(op_pos, name));
          } else {
            QMODEL_ASSIGN_OR_RETURN(items, pop_mark(op_pos, name));
            if (items.size() % 2) return fail(op_pos, "SETITEMS with an odd number of items");
          }
          if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
            return fail(op_pos, std::string(name) + " without a dict");
          }
          const uint32_t target = stack_.back();
          if (objs_[target].kind != Kind::kDict) {
            return fail(op_pos, std::string(name) + " on a " + kind_name(objs_[target].kind) + ", not a dict");
          }
          for (uint32_t it : items) QMODEL_RETURN_IF_ERROR(add_child(target, it, op_pos));
          break;
        }
        case 'a':
        case 'e': {
          std::vector<uint32_t> items;
          if (op == 'a') {
            items.resize(1);
            QMODEL_ASSIGN_OR_RETURN(items[0], pop(op_pos, name));
          } else {
            QMODEL_ASSIGN_OR_RETURN(items, pop_mark(op_pos, name));
          }
          if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
            return fail(op_pos, std::string(name) + " without a list");
          }
          const uint32_t target = stack_.back();
          if (objs_[target].kind != Kind::kList) {
            return fail(op_pos, std::string(name) + " on a " + kind_name(objs_[target].kind) + ", not a list");
          }
          for (uint32_t it : items) QMODEL_RETURN_IF_ERROR(add_child(target, it, op_pos));
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string parts[2];
          for (std::string& part : parts) {
            uint64_t end = pos;
            while (end < n && d[end] != '\n' && end - pos < 256) ++end;
            if (end >= n || d[end] != '\n') return fail(op_pos, "GLOBAL: unterminated or over-long name");
            part.assign(reinterpret_cast<const char*>(d + pos), static_cast<size_t>(end - pos));
            pos = end + 1;
          }
          QMODEL_ASSIGN_OR_RETURN(uint32_t g, resolve_global(parts[0], parts[1], op_pos, name));
          QMODEL_RETURN_IF_ERROR(push(g, op_pos));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          QMODEL_ASSIGN_OR_RETURN(uint32_t name_i, pop(op_pos, name));
          QMODEL_ASSIGN_OR_RETURN(uint32_t module_i, pop(op_pos, name));
          if (objs_[name_i].kind != Kind::kStr || objs_[module_i].kind != Kind::kStr) {
            return fail(op_pos, "STACK_GLOBAL needs two strings");
          }
          QMODEL_ASSIGN_OR_RETURN(uint32_t g, resolve_global(objs_[module_i].s, objs_[name_i].s, op_pos, name));
          QMODEL_RETURN_IF_ERROR(push(g, op_pos));
          break;
        }
        case 'R': {
          QMODEL_ASSIGN_OR_RETURN(uint32_t args, pop(op_pos, name));
          QMODEL_ASSIGN_OR_RETURN(uint32_t fn, pop(op_pos, name));
          QMODEL_ASSIGN_OR_RETURN(uint32_t result, reduce(fn, args, op_pos));
          QMODEL_RETURN_IF_ERROR(push(result, op_pos));
          break;
        }
        case 'b': {  // BUILD: state for an OrderedDict (_metadata) or a tensor; kept inert
          QMODEL_ASSIGN_OR_RETURN(uint32_t state, pop(op_pos, name));
          (void)state;
          if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) return fail(op_pos, "BUILD without a target");
          const Kind k = objs_[stack_.back()].kind;
          if (k != Kind::kDict && k != Kind::kTensor) {
            return fail(op_pos, std::string("BUILD on a ") + kind_name(k) + " (only dicts and tensors); refused");
          }
          break;
        }
        case 'Q': {
          QMODEL_ASSIGN_OR_RETURN(uint32_t pid, pop(op_pos, name));
          QMODEL_ASSIGN_OR_RETURN(uint32_t storage, persistent_load(pid, op_pos));
          QMODEL_RETURN_IF_ERROR(push(storage, op_pos));
          break;
        }
        case '0': {
          QMODEL_ASSIGN_OR_RETURN(uint32_t unused, pop(op_pos, name));
          (void)unused;
          break;
        }
        case '1': {
          QMODEL_ASSIGN_OR_RETURN(std::vector<uint32_t> unused, pop_mark(op_pos, name));
          (void)unused;
          break;
        }
        case '2': {
          if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) return fail(op_pos, "DUP on an empty stack");
          QMODEL_RETURN_IF_ERROR(push(stack_.back(), op_pos));
          break;
        }
        default:
          return fail(op_pos, std::string("opcode ") + name + " (" + hex_byte(op) +
                                  ") is not accepted in a state dict; refused, nothing was executed");
      }
    }
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file_ + ": out of memory unpickling");
  }
}

Result<PickledStateDict> Machine::state_dict(uint32_t root) {
  const Obj& top = objs_[root];
  if (top.kind != Kind::kDict) {
    return corrupt_file(file_, "", abs_offset(base_, 0),
                        std::string("the pickle holds a ") + kind_name(top.kind) + ", not a state dict");
  }
  std::vector<PickledTensor> named;
  std::set<std::string> seen;
  for (size_t k = 0; k + 1 < top.items.size(); k += 2) {
    const Obj& key = objs_[top.items[k]];
    const Obj& value = objs_[top.items[k + 1]];
    if (key.kind != Kind::kStr) {
      return corrupt_file(file_, "", abs_offset(base_, 0), std::string("state dict key is a ") + kind_name(key.kind));
    }
    if (value.kind != Kind::kTensor) {
      return corrupt_file(file_, key.s, abs_offset(base_, 0),
                          std::string("value is a ") + kind_name(value.kind) +
                              ", not a tensor (only flat state dicts are read: save model.state_dict())");
    }
    if (!seen.insert(key.s).second) return corrupt_file(file_, key.s, abs_offset(base_, 0), "duplicate state dict key");
    PickledTensor t = state_.tensors[static_cast<size_t>(value.i)];
    t.name = key.s;
    named.push_back(std::move(t));
  }
  PickledStateDict out;
  out.storages = std::move(state_.storages);
  out.tensors = std::move(named);
  return out;
}

}  // namespace pickle

Result<PickledStateDict> unpickle_state_dict(const std::string& file, ByteSpan pickle_bytes, uint64_t base_offset,
                                             PickleFlavor flavor, uint64_t* consumed) {
  try {
    pickle::Machine vm(file, pickle_bytes, base_offset,
                       flavor == PickleFlavor::kZip ? pickle::Mode::kStateZip : pickle::Mode::kStateLegacy);
    QMODEL_ASSIGN_OR_RETURN(uint32_t root, vm.run(consumed));
    return vm.state_dict(root);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file + ": out of memory unpickling");
  }
}

}  // namespace qmodel::converter
