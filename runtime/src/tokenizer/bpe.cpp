// BPE merge loop: symbols in a doubly linked array, candidate pairs in a min-heap keyed by
// (rank, position). A popped candidate is used only if both symbols are still there and still form
// that pair, so stale entries need no removal (the scheme of Hugging Face's Word::merge_all).
#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace qmodel::runtime::tok {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<Merge>& merges,
                   BpeOptions options)
    : vocab_(std::move(vocab)), options_(options) {
  for (const auto& [text, id] : vocab_) {
    size_t n = utf8_valid_len(text, 0);
    if (!text.empty() && n == text.size()) char_ids_.emplace(utf8_decode(text, 0, &n), id);
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Merge& m = merges[rank];
    // A repeated pair takes its later rank, as a Rust HashMap collected from the list does.
    merges_[pair_key(m.left, m.right)] = {static_cast<int32_t>(rank), m.merged};
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

void BpeModel::initial_symbols(const std::string& word, std::vector<int32_t>* ids) const {
  bool last_was_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t n = utf8_valid_len(word, i);
    if (n == 0) n = 1;  // cannot happen for validated text; keeps the loop total
    int32_t id = -1;
    if (n > 1 || static_cast<unsigned char>(word[i]) < 0x80) {
      size_t len = n;
      auto it = char_ids_.find(utf8_decode(word, i, &len));
      if (it != char_ids_.end()) id = it->second;
    }
    if (id >= 0) {
      ids->push_back(id);
      last_was_unk = false;
    } else {
      bool all_bytes = options_.byte_fallback;
      for (size_t k = 0; k < n && all_bytes; ++k) all_bytes = byte_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
      if (all_bytes) {
        for (size_t k = 0; k < n; ++k) ids->push_back(byte_ids_[static_cast<unsigned char>(word[i + k])]);
        last_was_unk = false;
      } else if (options_.unk_id >= 0) {
        if (!(options_.fuse_unk && last_was_unk)) ids->push_back(options_.unk_id);
        last_was_unk = true;
      }
    }
    i += n;
  }
}

void BpeModel::encode_word(const std::string& word, std::vector<int32_t>* out) const {
  if (options_.ignore_merges) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> ids;
  initial_symbols(word, &ids);
  const size_t n = ids.size();
  if (n < 2) {
    out->insert(out->end(), ids.begin(), ids.end());
    return;
  }
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Candidate {
    int32_t rank, pos, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push_pair = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    auto it = merges_.find(pair_key(ids[left], ids[next[left]]));
    if (it != merges_.end()) heap.push({it->second.rank, left, it->second.merged});
  };
  for (size_t i = 0; i + 1 < n; ++i) push_pair(static_cast<int32_t>(i));
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = next[c.pos];
    if (!alive[c.pos] || right < 0) continue;
    auto it = merges_.find(pair_key(ids[c.pos], ids[right]));
    if (it == merges_.end() || it->second.rank != c.rank || it->second.merged != c.merged) continue;
    ids[c.pos] = c.merged;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push_pair(prev[c.pos]);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out->push_back(ids[i]);
}

}  // namespace qmodel::runtime::tok
