#include "fuzz_driver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

namespace attune_test {

namespace {

// splitmix64: tiny, and the same sequence everywhere (std's distributions are not).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n); n > 0.
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }

 private:
  uint64_t state_;
};

uint64_t read_length(const std::string& data) {
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = length << 8 | static_cast<unsigned char>(data[static_cast<size_t>(i)]);
  return length;
}

void write_length(std::string* data, uint64_t length) {
  for (size_t i = 0; i < 8; ++i, length >>= 8) (*data)[i] = static_cast<char>(length & 0xFF);
}

class Mutator {
 public:
  Mutator(const FuzzSetup& setup, Random* random) : setup_(setup), random_(*random) {}

  std::string mutate(const std::string& seed) {
    std::string data = seed;
    const size_t edits = 1 + random_.below(4);
    for (size_t i = 0; i < edits; ++i) edit(&data);
    return data;
  }

 private:
  // Replaces data[at, at + erase) with `insert`, keeping a length prefix in step most of the time.
  void splice(std::string* data, size_t at, size_t erase, const std::string& insert) {
    const bool in_region = setup_.length_prefixed && data->size() >= 8 && at >= 8 && at <= 8 + read_length(*data);
    if (in_region && random_.below(4) != 0) {
      write_length(data, read_length(*data) + insert.size() - erase);
    }
    data->replace(at, erase, insert);
  }

  std::string random_range(const std::string& source) {
    if (source.empty()) return "";
    const size_t begin = random_.below(source.size());
    return source.substr(begin, 1 + random_.below(std::min<size_t>(source.size() - begin, 32)));
  }

  void edit(std::string* data) {
    static const char kInteresting[] = {0, '\x7f', '\x80', '\xff', '"', '\\', '{', '}', '[', ']',
                                        ',', ':', '0', '9', '-', '.', 'e', 'u', ' ', '\n'};
    const size_t size = data->size();
    const size_t at = random_.below(size + 1);
    const size_t span = std::min<size_t>(size - at, 1 + random_.below(16));
    switch (random_.below(11)) {
      case 0:
        if (size > 0) (*data)[random_.below(size)] ^= static_cast<char>(1u << random_.below(8));
        break;
      case 1:
        if (size > 0) (*data)[random_.below(size)] = kInteresting[random_.below(sizeof kInteresting)];
        break;
      case 2: data->resize(random_.below(size + 1)); break;
      case 3: splice(data, at, span, ""); break;
      case 4: splice(data, at, 0, random_range(*data)); break;
      case 5: splice(data, at, 0, setup_.tokens[random_.below(setup_.tokens.size())]); break;
      case 6: splice(data, at, span, setup_.tokens[random_.below(setup_.tokens.size())]); break;
      case 7: splice(data, at, random_.below(2) * span, random_range(setup_.seeds[random_.below(setup_.seeds.size())])); break;
      case 8:
        if (setup_.length_prefixed && size >= 8) {
          const uint64_t lengths[] = {read_length(*data) + random_.below(5) - 2, size - 8, size - 7, 0,
                                      uint64_t{1} << 32, random_.next(), 99'999'999, 100'000'000};
          write_length(data, lengths[random_.below(sizeof lengths / sizeof lengths[0])]);
        }
        break;
      case 9: {
        // A number becomes another: offsets and shapes at their edges.
        static const char* kNumbers[] = {"0", "1", "-1", "7", "8", "4294967296", "9223372036854775807",
                                         "9223372036854775808", "18446744073709551615", "1e308", "2.5"};
        const auto [begin, end] = digits_from(*data, at);
        if (begin < size) splice(data, begin, end - begin, kNumbers[random_.below(sizeof kNumbers / sizeof kNumbers[0])]);
        break;
      }
      default: {
        // A number, and often the next one too, moves by a small step: a pair like data_offsets
        // shifted together keeps its size and so reaches the overlap and hole checks.
        const int64_t step = static_cast<int64_t>(random_.below(17)) - 8;
        const size_t pairs = 1 + random_.below(2);
        size_t from = at;
        for (size_t i = 0; i < pairs; ++i) {
          const auto [begin, end] = digits_from(*data, from);
          if (begin >= data->size() || end - begin > 18) break;  // 18 digits: the step cannot overflow
          const int64_t value = std::strtoll(data->substr(begin, end - begin).c_str(), nullptr, 10) + step;
          const std::string text = std::to_string(value);
          splice(data, begin, end - begin, text);
          from = begin + text.size();
        }
      }
    }
  }

  // The first run of decimal digits at or after `from`: [begin, end), begin == size when none.
  static std::pair<size_t, size_t> digits_from(const std::string& data, size_t from) {
    const auto is_digit = [&](size_t i) { return data[i] >= '0' && data[i] <= '9'; };
    size_t begin = from;
    while (begin < data.size() && !is_digit(begin)) ++begin;
    size_t end = begin;
    while (end < data.size() && is_digit(end)) ++end;
    return {begin, end};
  }

  const FuzzSetup& setup_;
  Random& random_;
};

// An exactly sized copy: a read one byte past the end is then outside the allocation, where
// AddressSanitizer sees it (std::string has a terminator and spare capacity there).
void run_one(const std::string& input) {
  std::unique_ptr<uint8_t[]> bytes(new uint8_t[input.size()]);
  std::copy(input.begin(), input.end(), bytes.get());
  LLVMFuzzerTestOneInput(bytes.get(), input.size());
}

}  // namespace

}  // namespace attune_test

int main(int argc, char** argv) {
  using namespace attune_test;
  const size_t iterations = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  const FuzzSetup setup = fuzz_setup();
  Random random(seed);
  Mutator mutator(setup, &random);
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& input : setup.seeds) run_one(input);
  for (size_t i = 0; i < iterations; ++i) run_one(mutator.mutate(setup.seeds[random.below(setup.seeds.size())]));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu seeds + %zu mutated inputs (seed %llu) in %.2f s; %zu accepted, the rest refused with a message\n",
              setup.seeds.size(), iterations, static_cast<unsigned long long>(seed), seconds,
              setup.accepted != nullptr ? *setup.accepted : 0);
  return 0;
}
