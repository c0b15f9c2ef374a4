// A minimal non-owning view (C++17 has no std::span). Used for bytes from the mapping and for
// tensor data handed between libraries.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qmodel {

template <typename T>
class Span {
 public:
  constexpr Span() = default;
  constexpr Span(T* data, size_t size) : data_(data), size_(size) {}
  template <typename Container>
  constexpr Span(Container& c) : data_(c.data()), size_(c.size()) {}  // NOLINT
  constexpr T* data() const { return data_; }
  constexpr size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T& operator[](size_t i) const { return data_[i]; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }
  constexpr Span subspan(size_t offset, size_t count) const { return Span(data_ + offset, count); }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

using ByteSpan = Span<const uint8_t>;
using MutableByteSpan = Span<uint8_t>;

}  // namespace qmodel
